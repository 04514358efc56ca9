"""Device info keys, Jetson tool parsing (tegrastats, nvpmodel, jetson_clocks, jtop), power sampling, peak memory.

No Jetson here: the tools' output is sample text in the formats JetPack 4 (Nano: POM_5V_IN rails without units) and
JetPack 5/6 (Orin: VDD_IN rails in mW) print, and the real sampling code runs against fake ``tegrastats`` /
``nvpmodel`` / ``jetson_clocks`` executables put on PATH that print it.
"""

import os
import stat
import time

import numpy as np
import pytest

from dramnet_edge.bench import device
from dramnet_edge.bench.device import (
    PeakMemory, PowerSampler, device_info, input_power_mw, jetson_info, parse_jetson_clocks, parse_jtop_power,
    parse_nvpmodel, parse_tegrastats, parse_tegrastats_temps,
)
from dramnet_edge.bench.report import device_line

ORIN = ("11-22-2026 10:00:00 RAM 2893/7620MB (lfb 1x2MB) SWAP 0/3810MB CPU [2%@1190,0%@1190] EMC_FREQ 0% "
        "GR3D_FREQ 0% cpu@48.5C VDD_IN 4811mW/4811mW VDD_CPU_GPU_CV 639mW/639mW VDD_SOC 1438mW/1438mW")
ORIN_JP6 = ("12-01-2025 09:14:03 RAM 5432/30697MB (lfb 2x4MB) SWAP 0/15348MB (cached 0MB) CPU [12%@2201,3%@2201,"
            "0%@2201,1%@2201,5%@2201,0%@2201,0%@2201,2%@2201,off,off,off,off] EMC_FREQ 18%@3199 GR3D_FREQ 97%@[1300,1300] "
            "VIC_FREQ 729 APE 174 CV0@-256C CPU@51.25C SOC2@47.5C SOC0@48.1C CV1@-256C GPU@55.875C tj@56.2C SOC1@46.9C "
            "CV2@-256C VDD_GPU_SOC 14311mW/13920mW VDD_CPU_CV 2366mW/2301mW VIN_SYS_5V0 5244mW/5190mW VDDQ_VDD2_1V8AO "
            "1004mW/998mW")
NANO = ("RAM 1234/3964MB (lfb 300x4MB) CPU [5%@1479,off,off,3%@1479] EMC_FREQ 0% GR3D_FREQ 0% PLL@24C "
        "POM_5V_IN 2391/2391 POM_5V_GPU 0/0 POM_5V_CPU 447/447")


def test_device_info_has_the_documented_keys():
    info = device_info()
    for key in ("cpu_model", "cpu_cores", "ram_gb", "os", "python", "load_average", "torch_threads", "versions",
                "cuda", "jetson"):
        assert key in info, key
    assert info["cpu_cores"] >= 1
    assert "torch" in info["versions"]
    assert "onnxruntime" in info["versions"] and "openvino" in info["versions"]  # installed in this venv


def test_tegrastats_lines_of_both_generations():
    orin = parse_tegrastats(ORIN)
    assert orin == {"VDD_IN": 4811, "VDD_CPU_GPU_CV": 639, "VDD_SOC": 1438}
    assert input_power_mw(orin) == ("VDD_IN", 4811)
    nano = parse_tegrastats(NANO)
    assert input_power_mw(nano) == ("POM_5V_IN", 2391)
    assert "RAM" not in nano and "EMC_FREQ" not in nano
    assert input_power_mw(parse_tegrastats("RAM 1/2MB CPU [1%@100]")) is None


def test_agx_orin_has_no_input_rail_so_its_three_supplies_are_summed_and_temperatures_are_read():
    rails = parse_tegrastats(ORIN_JP6)
    assert rails["VDD_GPU_SOC"] == 14311 and "EMC_FREQ" not in rails and "SWAP" not in rails
    assert input_power_mw(rails) == ("VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0", 14311 + 2366 + 5244)
    del rails["VIN_SYS_5V0"]
    assert input_power_mw(rails) is None  # an incomplete set is not passed off as module power
    temps = parse_tegrastats_temps(ORIN_JP6)
    assert temps["GPU"] == 55.875 and temps["tj"] == 56.2 and "CV0" not in temps  # -256C = no sensor
    assert parse_tegrastats_temps(ORIN) == {"cpu": 48.5}


JETSON_CLOCKS_PINNED = """SOC family:tegra234  Machine:NVIDIA Jetson AGX Orin Developer Kit
Online CPUs: 0-11
cpu0: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
cpu1: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
cpu11: Online=0 Governor=schedutil MinFreq=115200 MaxFreq=2201600 CurrentFreq=729600 IdleStates: WFI=0 c7=0
GPU MinFreq=1300500000 MaxFreq=1300500000 CurrentFreq=1300500000
EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=3199000000 FreqOverride=1
DLA0_CORE:   Online=1 MinFreq=0 MaxFreq=1600000000 CurrentFreq=1600000000
Fan: PWM=255
NV Power Mode: MAXN
"""
JETSON_CLOCKS_DVFS = """SOC family:tegra210  Machine:NVIDIA Jetson Nano Developer Kit
Online CPUs: 0-3
cpu0: Online=1 Governor=schedutil MinFreq=102000 MaxFreq=1479000 CurrentFreq=1224000 IdleStates: WFI=1 c7=1
GPU MinFreq=76800000 MaxFreq=921600000 CurrentFreq=230400000
EMC MinFreq=204000000 MaxFreq=1600000000 CurrentFreq=1600000000 FreqOverride=0
Fan: speed=0
NV Power Mode: 5W
"""


def test_jetson_clocks_show():
    pinned = parse_jetson_clocks(JETSON_CLOCKS_PINNED)
    assert pinned["pinned"] is True and pinned["nv_power_mode"] == "MAXN"
    assert pinned["cpus"]["cpu0"] == {"online": True, "governor": "schedutil", "min_mhz": 2201.6, "max_mhz": 2201.6,
                                      "cur_mhz": 2201.6}
    assert pinned["cpus"]["cpu11"]["online"] is False  # offline cores do not count against "pinned"
    assert pinned["gpu"]["cur_mhz"] == 1300.5 and pinned["emc"] == {"min_mhz": 204.0, "max_mhz": 3199.0,
                                                                    "cur_mhz": 3199.0, "freq_override": 1}
    dvfs = parse_jetson_clocks(JETSON_CLOCKS_DVFS)
    assert dvfs["pinned"] is False and dvfs["gpu"]["cur_mhz"] == 230.4 and dvfs["nv_power_mode"] == "5W"
    assert parse_jetson_clocks("Fan: speed=0")["pinned"] is None


def test_jtop_power_dict():
    # jetson-stats 4.x: the input rail is moved out of "rail" into a named "tot"; without one, "tot" is a sum.
    orin = {"rail": {"VDD_CPU_CV": {"volt": 4992, "curr": 461, "warn": 0, "crit": 0, "power": 2301, "avg": 2290},
                     "VDD_GPU_SOC": {"volt": 4992, "curr": 2866, "power": 14311, "avg": 13920}},
            "tot": {"volt": 4984, "curr": 4220, "power": 21040, "avg": 20870, "name": "VDD_IN"}}
    assert input_power_mw(parse_jtop_power(orin)) == ("VDD_IN", 21040)
    summed = {"rail": {"GPU": {"power": 500, "avg": 480}, "CPU": {"power": 700, "avg": 690}},
              "tot": {"power": 1200, "avg": 1170}}
    assert input_power_mw(parse_jtop_power(summed)) == ("SUM_OF_RAILS", 1200)
    agx_orin = {"rail": {"VDD_GPU_SOC": {"power": 14311}, "VDD_CPU_CV": {"power": 2366},
                         "VIN_SYS_5V0": {"power": 5244}, "VDDQ_VDD2_1V8AO": {"power": 1004}},
                "tot": {"power": 22925, "avg": 22800}}  # jtop's sum counts the sub-rail too
    assert input_power_mw(parse_jtop_power(agx_orin)) == ("VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0", 21921)
    assert parse_jtop_power({}) == {}


def _fake_tool(folder, name, text, loop=False):
    """An executable ``name`` in ``folder`` that prints ``text`` (once, or every 50 ms until killed)."""
    (folder / f"{name}.txt").write_text(text)
    body = (f'while true; do cat "{folder}/{name}.txt"; sleep 0.05; done' if loop else f'cat "{folder}/{name}.txt"')
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_power_sampler_reads_a_tegrastats_subprocess(tmp_path, monkeypatch):
    _fake_tool(tmp_path, "tegrastats", ORIN + "\n", loop=True)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(device, "is_jetson", lambda: True)
    monkeypatch.setitem(__import__("sys").modules, "jtop", None)  # jtop absent: the tegrastats route
    with PowerSampler(interval_ms=50) as p:
        t0 = p.now()
        deadline = time.time() + 20
        while len(p.samples) < 3 and time.time() < deadline:
            time.sleep(0.05)
        t1 = p.now()
    s = p.summary()
    assert s["source"] == "tegrastats" and s["rail"] == "VDD_IN" and s["samples"] >= 3
    assert s["mean_w"] == pytest.approx(4.811) and s["temp_max_c"] == {"cpu": 48.5}
    assert p.mean_watts(t0, t1) == pytest.approx(4.811)


def test_jetson_info_from_the_tools(tmp_path, monkeypatch):
    _fake_tool(tmp_path, "nvpmodel", "NV Power Mode: MAXN\n0\n")
    _fake_tool(tmp_path, "jetson_clocks", JETSON_CLOCKS_PINNED)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    (tmp_path / "model").write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    (tmp_path / "release").write_text("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64\n")
    monkeypatch.setattr(device, "_DT_MODEL", tmp_path / "model")
    monkeypatch.setattr(device, "_TEGRA_RELEASE", tmp_path / "release")
    assert device.is_jetson()
    info = jetson_info()
    assert info["model"] == "NVIDIA Jetson AGX Orin Developer Kit" and info["l4t_release"].startswith("R36")
    assert info["nvpmodel"] == {"mode_name": "MAXN", "mode_id": 0}
    assert info["clocks"]["pinned"] is True and "NV Power Mode: MAXN" in info["jetson_clocks"]
    line = device_line({"cpu_model": "ARMv8", "cpu_cores": 12, "ram_gb": 30, "os": "Linux", "jetson": info})
    assert "nvpmodel MAXN" in line and "clocks pinned, GPU 1300 MHz" in line
    _fake_tool(tmp_path, "jetson_clocks", JETSON_CLOCKS_DVFS)
    assert any("not pinned" in n for n in jetson_info()["notes"])


def test_nvpmodel_query():
    assert parse_nvpmodel("NV Power Mode: MAXN\n0\n") == {"mode_name": "MAXN", "mode_id": 0}
    assert parse_nvpmodel("NV Power Mode: 15W\n2") == {"mode_name": "15W", "mode_id": 2}


def test_power_sampler_says_why_it_measured_nothing(monkeypatch):
    monkeypatch.setattr(device, "is_jetson", lambda: False)
    with PowerSampler() as p:
        pass
    s = p.summary()
    assert s["source"] is None and "Jetson" in s["reason"]
    assert p.mean_watts(0, 1e12) is None


def test_power_sampler_averages_over_segments():
    p = PowerSampler(enabled=False)
    p.samples = [(1.0, 5.0), (2.0, 7.0), (3.0, 100.0)]
    assert p.mean_watts(0.5, 2.5) == 6.0
    assert p.mean_watts_over([(0.5, 1.5), (2.5, 3.5)]) == 52.5
    assert p.summary()["peak_w"] == 100.0


def test_peak_memory_sees_a_large_allocation():
    with PeakMemory() as mem:
        a = np.ones(40_000_000)  # 320 MB
        a.sum()
        del a
    if mem.method is None:
        pytest.skip("no /proc/self/status on this OS")
    assert mem.rss_delta_mb > 200


# Sample lines of each Jetson generation, from rbonghi/jetson_stats: tests/tegrastats (its tegrastats emulator; the
# $RANDOM CPU loads and GR3D percentages replaced by fixed numbers) and jtop/tests/test_06_tegra_parse.py (the
# JetPack 7 AGX Orin line with current/average/max per rail).
JS_TX2 = ("RAM 707/7854MB (lfb 1659x4MB) CPU [10%@345,12%@345,0%@345,3%@345,5%@345,1%@345] BCPU@30C MCPU@30C "
          "GPU@28.5C PLL@30C Tboard@26C Tdiode@27.5C PMIC@100C thermal@29.4C VDD_IN 1038/1134 VDD_CPU 153/153 "
          "VDD_GPU 153/153 VDD_SOC 384/384 VDD_WIFI 38/124 VDD_DDR 192/192")
JS_AGX_XAVIER = ("RAM 407/15823MB (lfb 3702x4MB) SWAP 0/7911MB (cached 0MB) CPU [1%@2265,2%@2265,3%@2265,4%@2265,"
                 "5%@2265,6%@2265,7%@2265,8%@2265] EMC_FREQ 0% GR3D_FREQ 11% AO@26.5C GPU@28C iwlwifi@30C "
                 "Tdiode@31.25C PMIC@100C AUX@26.5C CPU@27.5C thermal@27.45C Tboard@27C GPU 1155/1155 CPU 385/385 "
                 "SOC 2504/2503 CV 0/0 VDDRQ 192/192 SYS5V 2692/2692")
JS_NANO = ("RAM 330/3964MB (lfb 758x4MB) SWAP 0/1982MB (cached 0MB) CPU [1%@102,2%@102,3%@102,4%@102] EMC_FREQ 0% "
           "GR3D_FREQ 5% PLL@20.5C CPU@23C PMIC@100C GPU@22.5C AO@27C thermal@22.5C POM_5V_IN 933/933 POM_5V_GPU 0/0 "
           "POM_5V_CPU 84/84")
JS_AGX_ORIN_SUDO = ("GR3D_FREQ 3%@0 GR3D2_FREQ 4%@0 NVJPG1 729 VIC_FREQ 115 APE 233 CV0@-256C CPU@41.437C Tboard@29C "
                    "SOC2@39.062C Tdiode@30.75C SOC0@39.031C CV1@-256C GPU@-256C tj@41.656C SOC1@38.937C CV2@-256C "
                    "VDD_GPU_SOC 2390mW/2390mW VDD_CPU_CV 796mW/796mW VIN_SYS_5V0 3522mW/3522mW NC 0mW/0mW "
                    "VDDQ_VDD2_1V8AO 301mW/301mW NC 0mW/0mW")
JS_AGX_ORIN_JP7 = ("07-25-2026 09:08:28 RAM 20642/62817MB (lfb 1x2MB) CPU [23%@2201,10%@2201] EMC_FREQ 3%@3199 "
                   "GR3D_FREQ 12%@[1300,1300] NVENC0 off APE 174 cpu@52.968C/52.968C gpu@47.625C/47.625C "
                   "VDD_GPU_SOC 5139mW/5139mW/5139mW VDD_CPU_CV 3268mW/3268mW/3268mW VIN_SYS_5V0 5500mW/5500mW/5500mW")
JS_TX1 = ("RAM 385/3984MB (lfb 779x4MB) CPU [1%@204,2%@204,3%@204,4%@204] AO@31C CPU@25C GPU@22C PLL@21.5C "
          "Tdiode@28.75C PMIC@100C Tboard@29C thermal@23.5C")


@pytest.mark.parametrize("line, rail, mw", [
    (JS_TX2, "VDD_IN", 1038),
    (JS_AGX_XAVIER, "GPU+CPU+SOC+CV+VDDRQ+SYS5V", 1155 + 385 + 2504 + 0 + 192 + 2692),
    (JS_NANO, "POM_5V_IN", 933),
    (JS_AGX_ORIN_SUDO, "VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0", 2390 + 796 + 3522),
    (JS_AGX_ORIN_JP7, "VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0", 5139 + 3268 + 5500),
])
def test_module_power_on_each_jetson_generation(line, rail, mw):
    rails = parse_tegrastats(line)
    assert "RAM" not in rails and "SWAP" not in rails and "GR3D_FREQ" not in rails
    assert input_power_mw(rails, sum_all=True) == (rail, mw)


def test_xavier_rails_and_unknown_modules():
    assert parse_tegrastats(JS_AGX_XAVIER) == {"GPU": 1155, "CPU": 385, "SOC": 2504, "CV": 0, "VDDRQ": 192,
                                               "SYS5V": 2692}
    assert input_power_mw(parse_tegrastats(JS_TX1), sum_all=True) is None  # TX1 prints no rails: no power
    # a module none of the rail sets describes: every rail summed, like jtop's total, never "NC"
    unknown = {"VDD_A": 100, "VDD_B": 250, "NC": 999}
    assert input_power_mw(unknown) is None and input_power_mw(unknown, sum_all=True) == ("SUM_OF_RAILS", 350)


def test_power_sampler_falls_back_to_tegrastats_when_the_jtop_service_is_down(tmp_path, monkeypatch):
    import sys
    import types

    class JtopException(Exception):
        pass

    class FailingJtop:  # what jetson_stats' jtop.start() raises without its service (jtop/jtop.py)
        def __init__(self, interval=0.5):
            pass

        def __enter__(self):
            raise JtopException("The jtop.service is not active. Please run:\nsudo jtop --install-service")

        def __exit__(self, *exc):
            return False

    monkeypatch.setitem(sys.modules, "jtop", types.SimpleNamespace(jtop=FailingJtop))
    _fake_tool(tmp_path, "tegrastats", JS_AGX_XAVIER + "\n", loop=True)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(device, "is_jetson", lambda: True)
    with PowerSampler(interval_ms=50) as p:
        deadline = time.time() + 20
        while len(p.samples) < 4 and time.time() < deadline:
            time.sleep(0.05)
    s = p.summary()
    assert s["source"] == "tegrastats" and s["rail"] == "GPU+CPU+SOC+CV+VDDRQ+SYS5V"
    assert s["mean_w"] == pytest.approx(6.928)
    assert s["note"].startswith("jtop failed: JtopException: The jtop.service is not active")
    assert s["note"].endswith("fell back to tegrastats")
    assert s["interval_ms_requested"] == 50 and s["interval_ms_measured"] > 0
