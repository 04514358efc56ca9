"""What a benchmark ran on, and the power it drew there.

``device_info()`` records the host (CPU model, cores, RAM, OS, load average), the toolkit versions, the CUDA device
when torch sees one and, on an NVIDIA Jetson, the power mode (``nvpmodel -q``) and clocks (``jetson_clocks --show``).
``PowerSampler`` samples module power during a run on a Jetson: from jtop (jetson-stats) when it imports, else from a
``tegrastats`` subprocess, also when jtop imports but its service is down or of another version (VDD_IN on Orin NX /
Nano and TX2, POM_5V_IN on Nano, the sum of the supply rails on AGX Orin and AGX Xavier, else the sum of every rail as
jtop does; see ``input_power_mw``). Elsewhere it samples nothing and says why: numbers are never invented.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

#: Module-input rails, most preferred first: one rail carrying the whole module's power (Orin NX / Nano, Xavier NX,
#: TX2: VDD_IN; Nano: POM_5V_IN; VDD_IN_SYS on some carrier boards). jetson_stats' tegrastats emulator
#: (tests/tegrastats) prints VDD_IN for TX2, POM_5V_IN for Nano; its jtop/core/power.py takes these two as the total.
INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "VDD_IN_SYS")
#: Modules fed by several supplies, each on its own monitor channel, and no input rail: their sum is the module's
#: power. Jetson AGX Orin: VDD_GPU_SOC + VDD_CPU_CV + VIN_SYS_5V0 (its fourth rail, VDDQ_VDD2_1V8AO, is a sub-rail
#: and is not added). Jetson AGX Xavier: GPU + CPU + SOC + CV + VDDRQ + SYS5V (two three-channel monitors; its
#: tegrastats line has no POM_5V_IN, as the emulator's Xavier sample shows).
SUPPLY_RAIL_SETS = (("VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0"), ("GPU", "CPU", "SOC", "CV", "VDDRQ", "SYS5V"))
#: Last resort (jtop's total when it found no input rail, and ``SUM_OF_RAILS`` here for a tegrastats line of a module
#: none of the above describes): the sum of every rail read, sub-rails included, so an upper bound.
FALLBACK_RAILS = ("SUM_OF_RAILS",)
#: Monitor channels that are not rails: "NC" (not connected) on AGX Orin's second monitor.
_NOT_RAILS = ("NC",)
_TEGRA_RELEASE = Path("/etc/nv_tegra_release")
_DT_MODEL = Path("/proc/device-tree/model")

# "VDD_IN 4811mW/4811mW" (JetPack 5/6) or "POM_5V_IN 2391/2391" (JetPack 4): current/average in mW.
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*)\s+(\d+)(?:mW)?/(\d+)(?:mW)?\b")
# tegrastats temperatures: "cpu@48.5C", "tj@50.968C", "SOC2@44.5C".
_TEMP = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")
# jetson_clocks --show (frequencies: CPU lines in kHz, GPU / EMC in Hz):
#   cpu0: Online=1 Governor=schedutil MinFreq=729600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
#   GPU MinFreq=306000000 MaxFreq=1300500000 CurrentFreq=1300500000
#   EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=3199000000 FreqOverride=1
#   NV Power Mode: MAXN
_JC_CPU = re.compile(r"^\s*cpu(\d+):\s*(?:Online=(\d)\s+)?Go[n]?vernor=(\S+)\s+MinFreq=(\d+)\s+MaxFreq=(\d+)"
                     r"\s+CurrentFreq=(\d+)")
_JC_UNIT = re.compile(r"^\s*(GPU|EMC)\s+MinFreq=(\d+)\s+MaxFreq=(\d+)\s+CurrentFreq=(\d+)(?:\s+FreqOverride=(\d+))?")


# --------------------------------------------------------------------------------------------- host

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key = line.split(":")[0].strip().lower()
            if key in ("model name", "hardware", "cpu model"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if platform.system() == "Darwin":
        out = _run(["sysctl", "-n", "machdep.cpu.brand_string"])
        if out:
            return out.strip()
    return platform.processor() or platform.machine()


#: The vector/matrix ISA extensions that decide CPU inference speed (as /proc/cpuinfo spells them): FP32 SIMD
#: (avx2/fma, avx512f), INT8 dot products (avx512_vnni, avx_vnni, amx_int8), BF16 (avx512_bf16, amx_bf16).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16",
             "asimd", "asimddp", "sve")


def cpu_isa() -> list[str]:
    """The ``ISA_FLAGS`` this CPU reports (Linux /proc/cpuinfo; ARM's "Features" line too); [] where unreadable."""
    flags: set[str] = set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key = line.split(":")[0].strip().lower()
            if key in ("flags", "features"):
                flags |= set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return [f for f in ISA_FLAGS if f in flags]


def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 2)
    except OSError:
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 2)
    except (ValueError, OSError, AttributeError):
        return None


def _physical_cores() -> int | None:
    try:
        pairs = set()
        phys = core = None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("physical id"):
                phys = line.split(":")[1].strip()
            elif line.startswith("core id"):
                core = line.split(":")[1].strip()
            elif not line.strip() and core is not None:
                pairs.add((phys, core))
                phys = core = None
        if core is not None:
            pairs.add((phys, core))
        return len(pairs) or None
    except OSError:
        return None


def _run(cmd: list[str], timeout: float = 10.0) -> str | None:
    """stdout of a command, or None when it is absent or fails (its stderr is folded in on failure)."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout if p.returncode == 0 else None


def _versions() -> dict[str, str]:
    try:
        from ..export.sidecar import toolkit_versions

        return toolkit_versions()
    except Exception:  # noqa: BLE001 - device info must never fail a benchmark
        from importlib import metadata

        out = {}
        for dist in ("torch", "onnxruntime", "openvino", "tensorrt"):
            try:
                out[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                pass
        return out


def _cuda_info() -> dict | None:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    i = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(i)
    return {"name": props.name, "capability": f"{props.major}.{props.minor}",
            "memory_gb": round(props.total_memory / 1024**3, 2), "cuda": torch.version.cuda,
            "count": torch.cuda.device_count()}


def device_info() -> dict:
    """What this machine is. Keys: cpu_model, cpu_isa (``ISA_FLAGS`` present), cpu_cores (logical), cpu_physical_cores, ram_gb, os, machine, python,
    load_average (1/5/15 min; a loaded machine gives noisy timings), torch_threads, versions (toolkit -> version),
    cuda (name, capability, memory_gb, cuda, count; None without a CUDA device), jetson (None off a Jetson)."""
    import torch

    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        load = None
    return {
        "cpu_model": _cpu_model(),
        "cpu_isa": cpu_isa(),
        "cpu_cores": os.cpu_count(),
        "cpu_physical_cores": _physical_cores(),
        "ram_gb": _ram_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "load_average": load,
        "torch_threads": torch.get_num_threads(),
        "versions": _versions(),
        "cuda": _cuda_info(),
        "jetson": jetson_info() if is_jetson() else None,
    }


# ------------------------------------------------------------------------------------------- Jetson

def is_jetson() -> bool:
    """True on an NVIDIA Jetson (L4T release file, or a device-tree model naming Jetson/NVIDIA)."""
    if _TEGRA_RELEASE.exists():
        return True
    try:
        model = _DT_MODEL.read_bytes().decode(errors="ignore").lower()
    except OSError:
        return False
    return "jetson" in model or "nvidia" in model


def parse_nvpmodel(text: str) -> dict:
    """``nvpmodel -q`` output -> {"mode_name": "MAXN", "mode_id": 0} (keys absent when not found)."""
    out: dict = {}
    m = re.search(r"NV Power Mode:\s*(\S+)", text)
    if m:
        out["mode_name"] = m.group(1)
    ids = [ln.strip() for ln in text.splitlines() if ln.strip().isdigit()]
    if ids:
        out["mode_id"] = int(ids[-1])
    return out


def parse_jetson_clocks(text: str) -> dict:
    """``jetson_clocks --show`` output -> {"cpus": {"cpu0": {"online", "governor", "min_mhz", "max_mhz", "cur_mhz"}},
    "gpu" / "emc": {"min_mhz", "max_mhz", "cur_mhz"[, "freq_override"]}, "nv_power_mode", "pinned"}.

    ``pinned`` is True when every online CPU and the GPU run at their maximum with the minimum raised to it (what
    ``sudo jetson_clocks`` does), False when one does not, None when the output names neither. Keys absent when not
    found; lines the parser does not know (SOC family, Online CPUs, Fan) are ignored."""
    out: dict = {"cpus": {}}
    for line in text.splitlines():
        m = _JC_CPU.match(line)
        if m:
            cpu, online, governor, lo, hi, cur = m.groups()
            out["cpus"][f"cpu{cpu}"] = {"online": online != "0", "governor": governor, "min_mhz": int(lo) / 1000,
                                        "max_mhz": int(hi) / 1000, "cur_mhz": int(cur) / 1000}
            continue
        m = _JC_UNIT.match(line)
        if m:
            unit, lo, hi, cur, override = m.groups()
            entry = {"min_mhz": int(lo) / 1e6, "max_mhz": int(hi) / 1e6, "cur_mhz": int(cur) / 1e6}
            if override is not None:
                entry["freq_override"] = int(override)
            out[unit.lower()] = entry
            continue
        m = re.search(r"NV Power Mode:\s*(\S+)", line)
        if m:
            out["nv_power_mode"] = m.group(1)
    units = [c for c in out["cpus"].values() if c["online"]] + ([out["gpu"]] if "gpu" in out else [])
    out["pinned"] = all(u["min_mhz"] == u["max_mhz"] == u["cur_mhz"] for u in units) if units else None
    return out


def jetson_info() -> dict:
    """Jetson model, L4T release, power mode (nvpmodel -q), clocks (jetson_clocks --show) and JetPack version.

    Missing tools give None with a note; ``jetson_clocks --show`` needs root on most images (then the note says so).
    """
    info: dict = {"notes": []}
    try:
        info["model"] = _DT_MODEL.read_bytes().decode(errors="ignore").strip("\x00").strip()
    except OSError:
        info["model"] = None
    try:
        info["l4t_release"] = _TEGRA_RELEASE.read_text().splitlines()[0].strip("# ").strip()
    except (OSError, IndexError):
        info["l4t_release"] = None
    q = _run(["nvpmodel", "-q"])
    info["nvpmodel"] = parse_nvpmodel(q) if q else None
    if q is None:
        info["notes"].append("nvpmodel -q unavailable (not on PATH or failed); power mode unknown")
    clocks = _run(["jetson_clocks", "--show"])
    info["jetson_clocks"] = clocks.strip() if clocks else None
    info["clocks"] = parse_jetson_clocks(clocks) if clocks else None
    if clocks is None:
        info["notes"].append("jetson_clocks --show unavailable (absent, or needs sudo); clocks not recorded")
    elif info["clocks"]["pinned"] is False:
        info["notes"].append("clocks are not pinned (run sudo jetson_clocks): DVFS adds noise to the timings")
    jp = _run(["dpkg-query", "-W", "-f=${Version}", "nvidia-jetpack"])
    info["jetpack"] = jp.strip() if jp else None
    return info


# -------------------------------------------------------------------------------------------- power

def parse_tegrastats(line: str) -> dict[str, int]:
    """Rails of one tegrastats line -> {rail: current mW}. Handles ``VDD_IN 4811mW/4811mW`` and ``POM_5V_IN 2391/2391``.
    Frequencies such as ``GR3D_FREQ 0%`` or ``EMC_FREQ 0%`` are not rails and are ignored."""
    return {name: int(cur) for name, cur, _avg in _RAIL.findall(line)}


def parse_tegrastats_temps(line: str) -> dict[str, float]:
    """Temperatures of one tegrastats line -> {zone: degrees C} (``cpu@48.5C gpu@47C tj@50.968C``). Absent
    sensors show as ``-256C`` on some modules; those are dropped."""
    return {name: float(t) for name, t in _TEMP.findall(line) if float(t) > -200}


def parse_jtop_power(power: dict) -> dict[str, int]:
    """``jtop().power`` -> {rail: current mW}, like ``parse_tegrastats``.

    jetson-stats 4.x gives {"rail": {name: {"power": mW, "avg": mW, "volt", "curr", ...}}, "tot": {"power", "avg",
    "name"?}}: it moves the board-input rail (VDD_IN / POM_5V_IN) out of "rail" into "tot" and names it there; with
    no such rail "tot" is the sum of the rails and has no name, which is reported as ``SUM_OF_RAILS``, never as an
    input rail."""
    rails = {name: int(v["power"]) for name, v in (power.get("rail") or {}).items()
             if isinstance(v, dict) and "power" in v}
    tot = power.get("tot") or {}
    if "power" in tot:
        rails.setdefault(tot.get("name") or "SUM_OF_RAILS", int(tot["power"]))
    return rails


def input_power_mw(rails: dict[str, int], *, sum_all: bool = False) -> tuple[str, int] | None:
    """(rail, mW) of the module's input power among parsed rails, or None: an ``INPUT_RAILS`` rail, else the sum of
    a complete ``SUPPLY_RAIL_SETS`` set (rail = the names joined by '+'), else a ``FALLBACK_RAILS`` total, else with
    ``sum_all`` (tegrastats lines) the sum of every rail but ``_NOT_RAILS``, named ``SUM_OF_RAILS``."""
    for rail in INPUT_RAILS:
        if rail in rails:
            return rail, rails[rail]
    for supplies in SUPPLY_RAIL_SETS:
        if all(r in rails for r in supplies):
            return "+".join(supplies), sum(rails[r] for r in supplies)
    for rail in FALLBACK_RAILS:
        if rail in rails:
            return rail, rails[rail]
    counted = {k: v for k, v in rails.items() if k not in _NOT_RAILS}
    if sum_all and counted:
        return FALLBACK_RAILS[0], sum(counted.values())
    return None


class PowerSampler:
    """Samples board input power in a background thread while a benchmark runs (Jetson only).

    with PowerSampler(interval_ms=100) as power:
        ... timed work, marking segments with power.now() ...
    power.mean_watts(start, end) -> mean W over samples taken in [start, end] (None when none)
    power.summary() -> {"source", "rail", "samples", "mean_w", "peak_w"} or {"source": None, "reason": ...}

    Source: jtop (jetson-stats) when importable, else ``tegrastats --interval N`` (a subprocess), else none.
    Times are ``time.perf_counter()`` seconds, the clock the benchmark uses.
    """

    def __init__(self, interval_ms: int = 100, enabled: bool = True):
        self.interval_ms = interval_ms
        self.enabled = enabled
        self.samples: list[tuple[float, float]] = []  # (perf_counter s, watts)
        self.temps_max: dict[str, float] = {}  # hottest reading per thermal zone (tegrastats only)
        self.source: str | None = None
        self.rail: str | None = None
        self.reason: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen | None = None

    @staticmethod
    def now() -> float:
        return time.perf_counter()

    def __enter__(self) -> "PowerSampler":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        if not self.enabled:
            self.reason = "power sampling disabled"
            return
        if not is_jetson():
            self.reason = "not a Jetson: no tegrastats/jtop power rails (use an external meter or nvidia-smi)"
            return
        try:
            import jtop  # noqa: F401

            self.source = "jtop"
            self._thread = threading.Thread(target=self._jtop_loop, daemon=True)
        except ImportError:
            if not self._start_tegrastats():
                self.reason = "neither jtop (pip install jetson-stats) nor tegrastats is available"
                return
            self._thread = threading.Thread(target=self._tegrastats_loop, daemon=True)
        self._thread.start()

    def _start_tegrastats(self) -> bool:
        if shutil.which("tegrastats") is None:
            return False
        self.source = "tegrastats"
        self._proc = subprocess.Popen(["tegrastats", "--interval", str(self.interval_ms)],
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        return True

    def _record(self, rails: dict[str, int], sum_all: bool = False) -> None:
        found = input_power_mw(rails, sum_all=sum_all)
        if found is not None:
            self.rail = found[0]
            self.samples.append((time.perf_counter(), found[1] / 1000.0))

    def _tegrastats_loop(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            if self._stop.is_set():
                break
            self._record(parse_tegrastats(line), sum_all=True)
            for zone, t in parse_tegrastats_temps(line).items():
                self.temps_max[zone] = max(t, self.temps_max.get(zone, t))

    def _jtop_loop(self) -> None:
        from jtop import jtop

        try:
            with jtop(interval=self.interval_ms / 1000.0) as jetson:
                while not self._stop.is_set() and jetson.ok():
                    self._record(parse_jtop_power(jetson.power or {}))
        except Exception as e:  # noqa: BLE001 - service down or another version (JtopException): use tegrastats
            failure = f"jtop failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
            if self._stop.is_set():
                self.reason = failure
                return
            if not self._start_tegrastats():
                self.source = None
                self.reason = failure + "; tegrastats is not available either"
                return
            self.reason = failure + "; fell back to tegrastats"
            self._tegrastats_loop()

    def stop(self) -> None:
        self._stop.set()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._proc = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def mean_watts(self, start: float, end: float) -> float | None:
        vals = [w for t, w in self.samples if start <= t <= end]
        return sum(vals) / len(vals) if vals else None

    def mean_watts_over(self, segments: list[tuple[float, float]]) -> float | None:
        vals = [w for t, w in self.samples if any(a <= t <= b for a, b in segments)]
        return sum(vals) / len(vals) if vals else None

    def measured_interval_ms(self) -> float | None:
        """Median time between consecutive samples (ms): what the source really delivered, which can differ from
        the requested interval (tegrastats on a loaded board, jtop's own service period)."""
        times = [t for t, _ in self.samples]
        if len(times) < 2:
            return None
        gaps = sorted(b - a for a, b in zip(times, times[1:]))
        return round(1000.0 * gaps[len(gaps) // 2], 1)

    def summary(self) -> dict:
        if not self.samples:
            return {"source": self.source, "reason": self.reason or "no samples recorded"}
        watts = [w for _, w in self.samples]
        out = {"source": self.source, "rail": self.rail, "samples": len(watts),
               "mean_w": round(sum(watts) / len(watts), 3), "peak_w": round(max(watts), 3),
               "interval_ms_requested": self.interval_ms, "interval_ms_measured": self.measured_interval_ms()}
        if self.reason:
            out["note"] = self.reason
        if self.temps_max:
            out["temp_max_c"] = dict(self.temps_max)
        return out


# ------------------------------------------------------------------------------------------- memory

class PeakMemory:
    """Peak memory of a stretch of work: host RSS (Linux: VmHWM after resetting it through /proc/self/clear_refs)
    and, for CUDA, ``torch.cuda.max_memory_allocated`` plus the device-wide used memory (``torch.cuda.mem_get_info``,
    i.e. cudaMemGetInfo, sampled in a thread): torch's allocator does not see what TensorRT allocates itself.

    with PeakMemory(cuda=False) as mem: ...work...
    mem.rss_peak_mb (peak resident set during the work), mem.rss_delta_mb (that peak minus the RSS before),
    mem.cuda_peak_mb (torch tensors only; None off CUDA), mem.device_used_peak_mb / mem.device_used_delta_mb (the
    whole device: every process and library; on a Jetson the memory CPU and GPU share), mem.method ("vmhwm",
    "sampled" or None when it cannot be measured here).
    """

    def __init__(self, cuda: bool = False, sample_s: float = 0.005, device_sample_s: float = 0.02):
        self.cuda = cuda
        self.sample_s = sample_s
        self.device_sample_s = device_sample_s
        self.rss_before_mb = self.rss_peak_mb = self.rss_delta_mb = self.cuda_peak_mb = None
        self.device_used_peak_mb = self.device_used_delta_mb = None
        self.method: str | None = None
        self._stop = threading.Event()
        self._thread = None
        self._device_thread = None
        self._sampled = 0.0
        self._device_before = self._device_peak = 0

    @staticmethod
    def _status_mb(key: str) -> float | None:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
        except OSError:
            return None
        return None

    @staticmethod
    def _reset_hwm() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")  # Linux >= 4.0: resets VmHWM to the current RSS
            return True
        except OSError:
            return False

    def _sample_loop(self) -> None:
        while not self._stop.wait(self.sample_s):
            rss = self._status_mb("VmRSS")
            if rss is not None:
                self._sampled = max(self._sampled, rss)

    @staticmethod
    def _device_used() -> int:
        import torch

        free, total = torch.cuda.mem_get_info()
        return total - free

    def _device_loop(self) -> None:
        while not self._stop.wait(self.device_sample_s):
            self._device_peak = max(self._device_peak, self._device_used())

    def __enter__(self) -> "PeakMemory":
        self.rss_before_mb = self._status_mb("VmRSS")
        if self.rss_before_mb is not None:
            if self._reset_hwm():
                self.method = "vmhwm"
            else:
                self.method = "sampled"
                self._sampled = self.rss_before_mb
                self._thread = threading.Thread(target=self._sample_loop, daemon=True)
                self._thread.start()
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._device_before = self._device_peak = self._device_used()
            self._device_thread = threading.Thread(target=self._device_loop, daemon=True)
            self._device_thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self.method == "vmhwm":
            self.rss_peak_mb = self._status_mb("VmHWM")
        elif self.method == "sampled":
            self._thread.join(timeout=1)
            self.rss_peak_mb = max(self._sampled, self._status_mb("VmRSS") or 0.0)
        if self.rss_peak_mb is not None and self.rss_before_mb is not None:
            self.rss_delta_mb = max(0.0, self.rss_peak_mb - self.rss_before_mb)
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            self.cuda_peak_mb = torch.cuda.max_memory_allocated() / 1024**2
            self._device_thread.join(timeout=1)
            self._device_peak = max(self._device_peak, self._device_used())
            self.device_used_peak_mb = self._device_peak / 1024**2
            self.device_used_delta_mb = max(0, self._device_peak - self._device_before) / 1024**2


def tensorrt_memory_mb(session) -> dict:
    """TensorRT's own device memory for a session that reports it (``TensorRTSession.device_memory``), in MiB:
    {"trt_activation_mb", "trt_engine_file_mb", "trt_load_device_mb"}; {} for other sessions."""
    report = getattr(session, "device_memory", None)
    if report is None:
        return {}
    mem = report()
    mib = 1024.0**2
    load = mem.get("load_device_bytes")
    return {"trt_activation_mb": round(mem["activation_bytes"] / mib, 2),
            "trt_engine_file_mb": round(mem["engine_file_bytes"] / mib, 2),
            "trt_load_device_mb": None if load is None else round(load / mib, 2)}
