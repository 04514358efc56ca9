"""dramnet-edge: train DRAMNet / AIBNet deblurring networks and deploy them to edge devices."""

__version__ = "0.1.0"
