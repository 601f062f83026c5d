"""Data at scale: memory-mapped samples against in-memory ones, and parallel scene generation.

Four parts, each runnable alone (``--part NAME``) and each writing its figures as JSON
(``--json FILE``, one object per part):

- ``generate``: ``generate_scenes`` of ``--samples`` scenes (default 10,000) with 1 and with 2
  worker processes, side by side, ``--repeat`` times alternately. The speed-up is the median over
  rounds of each round's ratio (its 1-worker time over its 2-worker time, run back to back), since
  a shared VM's cores change speed between minutes and the fastest of each side may come from
  different minutes; the ratio of the fastest runs is reported beside it. The two folders must be
  identical byte for byte. The CPU seconds each run used (its own and its workers') tell the work
  apart from the wait: CPU seconds over wall seconds of a 2-worker run is how many cores the workers
  kept busy (2.0 when nothing in the code serialises them), and the same work taking more CPU
  seconds is the host's cores running slower, not the code doing more.
- ``epoch``: one epoch on the course's split of ``--data`` (default: the default scene of
  ``--samples`` scenes, generated under ``--dir``), the samples mapped from the cache
  (``memory="map"``, the cache streamed into its file if it is not there yet), in a fresh process
  whose memory a thread samples (``PeakSampler``): first every batch of
  an epoch drawn from the samples (the data side of an epoch: every page of the training split),
  then ``fusionzoo.fit`` of ``--model`` (default matmul, the zoo's fastest model that reads both
  inputs) for one epoch with validation, on the whole training split or its first ``--rows`` rows
  (a whole epoch of 200,000 samples took 29 minutes on 2 idle cores of a small VM). The peak of the
  process's anonymous memory (its own, not the page cache's file pages) is the figure, beside its
  peak resident memory. The cache's pages are dropped from the page cache first
  (``posix_fadvise``), so the epoch starts from the disk.
- ``share``: ``--processes`` processes (default 2) started as torchrun would (gloo, one machine)
  open ``--data`` with ``--memory``, read every sample once, then train ``--share-steps`` DDP
  steps. Each reports the anonymous memory that opening and reading the data added, and its
  proportional share (Pss) of the cache file's pages: their sum is what the data cost the machine.
  Run with ``--processes 1`` and ``2`` (and ``--memory load`` for contrast): the sums' ratio says
  whether two processes hold one copy (about 1x) or two (2x).
- ``throughput``: training samples per second with the samples mapped and loaded, on the first
  ``--rows`` rows of ``--data``'s training split whose cache is in the page cache:
  ``fusionzoo.fit`` for one epoch each, ``--repeat`` interleaved rounds, fastest counts; and one
  pass of shuffled ``Samples.batch`` calls over all rows (the data path alone), and whether both
  ways give identical batches.
- ``order``: whether reading a batch's rows in file order helps the memory map: ``--repeat``
  rounds, each a fresh process per way that drops the cache's pages from the page cache, maps
  ``--data`` and reads ``--batches`` shuffled batches of 32 (default all) once from the disk, then
  again from the page cache; ``shuffled`` reads each batch's rows as drawn, ``sorted`` reads them
  in ascending order and puts them back in the drawn order (the same batches).

Run, e.g.::

    python benchmarks/scale.py --part generate --samples 10000 --json generate.json
    python benchmarks/scale.py --part epoch --samples 200000 --dir /scratch/scale --json epoch.json
    python benchmarks/scale.py --part share --data /scratch/scale/cubes-200000 --processes 2
    python benchmarks/scale.py --part throughput --data /scratch/scale/cubes-10000

Linux only for the memory figures (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

PARTS = ("generate", "epoch", "share", "throughput", "order")
KIB = 1024
GIB = 2**30


# --- memory -------------------------------------------------------------------------------------


def rollup(pid: str = "self") -> dict[str, int]:
    """``/proc/PID/smaps_rollup`` in bytes: Rss, Pss, Anonymous, Private_Dirty, ..."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value) * KIB
    return fields


def mapping_of(path: Path, pid: str = "self") -> dict[str, int]:
    """Rss, Pss, Shared_Clean, Private_Clean, Private_Dirty and Anonymous of this process's
    mappings of ``path`` (all zero when it maps none), in bytes."""
    wanted = ("Rss", "Pss", "Shared_Clean", "Private_Clean", "Private_Dirty", "Anonymous")
    sums = dict.fromkeys(wanted, 0)
    inside = False
    target = str(path.resolve())
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if len(head) >= 5 and "-" in head[0] and ":" not in head[0]:  # a mapping's first line
            inside = len(head) == 6 and head[5].strip() == target
        elif inside and head and head[0].rstrip(":") in sums:
            sums[head[0].rstrip(":")] += int(head[1]) * KIB
    return sums


def status_memory(pid: str = "self") -> dict[str, int]:
    """``/proc/PID/status``'s resident memory counters in bytes (VmRSS, RssAnon, RssFile, RssShmem):
    kept by the kernel as running totals, so reading them costs nothing however large the mappings."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            fields[name] = int(rest.split()[0]) * KIB
    return fields


class PeakSampler:
    """Peaks of a process's memory, sampled on a thread: ``/proc/self/status``'s counters every
    ``interval`` seconds, and ``smaps_rollup`` every ``rollup_every`` seconds and at both ends.
    ``peak`` holds each field's maximum. ``smaps_rollup`` walks every page of every mapping (1.6
    million for a 6 GB cache) holding the lock that page faults need, so sampled every 0.2 s it
    took half a core and halved training speed; the counters give the same anonymous peak for free."""

    def __init__(self, interval: float = 0.2, rollup_every: float = 10.0):
        self.interval = interval
        self.rollup_every = rollup_every
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.interval):
            full = time.monotonic() - last >= self.rollup_every
            self.sample(full)
            if full:
                last = time.monotonic()

    def sample(self, full: bool = True) -> None:
        fields = {**status_memory(), **(rollup() if full else {})}
        for name, value in fields.items():
            self.peak[name] = max(self.peak.get(name, 0), value)

    @property
    def anonymous(self) -> int:
        """The peak anonymous memory, by whichever source saw more."""
        return max(self.peak.get("Anonymous", 0), self.peak.get("RssAnon", 0))

    @property
    def resident(self) -> int:
        """The peak resident memory, by whichever source saw more."""
        return max(self.peak.get("Rss", 0), self.peak.get("VmRSS", 0))

    def __enter__(self) -> PeakSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def drop_from_page_cache(path: Path) -> None:
    """Ask the kernel to drop ``path``'s clean pages from the page cache (those no process maps)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def machine() -> dict:
    return {"cpus": len(os.sched_getaffinity(0)), "load_average_1_5_15": load_average(), "nice": os.nice(0),
            "torch_threads": torch.get_num_threads(), "memory_available_gib": _available_gib()}


def _available_gib() -> float | None:
    from fusionzoo.data.memory import available_memory

    available = available_memory()
    return None if available is None else round(available / GIB, 2)


# --- parts --------------------------------------------------------------------------------------


def part_generate(args: argparse.Namespace) -> dict:
    from fusionzoo.sim import generate_scenes

    folder = Path(tempfile.mkdtemp(prefix="scale-generate-", dir=args.dir))
    times: dict[int, list[float]] = {1: [], 2: []}
    cpu_times: dict[int, list[float]] = {1: [], 2: []}
    before = machine()
    try:
        for round_ in range(args.repeat):
            for workers in ((1, 2) if round_ % 2 == 0 else (2, 1)):
                root = folder / f"workers-{workers}"
                shutil.rmtree(root, ignore_errors=True)
                cpu = _cpu_seconds()
                started = time.perf_counter()
                generate_scenes(root, samples=args.samples, workers=workers, progress=False)
                times[workers].append(time.perf_counter() - started)
                cpu_times[workers].append(_cpu_seconds() - cpu)
                print(f"round {round_ + 1}: {workers} worker(s) {times[workers][-1]:.1f} s, CPU "
                      f"{cpu_times[workers][-1]:.1f} s", file=sys.stderr)
        identical = _same_files(folder / "workers-1", folder / "workers-2")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    one, two = min(times[1]), min(times[2])
    per_round = [a / b for a, b in zip(times[1], times[2])]
    busy = [cpu / wall for cpu, wall in zip(cpu_times[2], times[2])]
    return {"samples": args.samples, "seconds": {"1": times[1], "2": times[2]}, "best_s": {"1": one, "2": two},
            "cpu_seconds": {"1": cpu_times[1], "2": cpu_times[2]},
            "scenes_per_s": {"1": args.samples / one, "2": args.samples / two},
            "speedup_per_round": per_round, "speedup_2_over_1": statistics.median(per_round),
            "speedup_fastest_over_fastest": one / two, "cores_busy_2_workers": busy,
            "identical_files": identical, "machine_before": before, "machine_after": machine()}


def _cpu_seconds() -> float:
    """CPU seconds used so far by this process and its finished children (the workers)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _same_files(a: Path, b: Path) -> bool:
    names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    if names != sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()):
        return False
    return all((a / name).read_bytes() == (b / name).read_bytes() for name in names)


def _dataset(args: argparse.Namespace) -> Path:
    """``--data``, or the default scene of ``--samples`` scenes generated under ``--dir`` (reused)."""
    if args.data is not None:
        return args.data
    from fusionzoo.sim import generate_scenes

    root = Path(args.dir) / f"cubes-{args.samples}"
    started = time.perf_counter()
    generate_scenes(root, samples=args.samples, progress=True)
    print(f"dataset {root} ready after {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return root


def _build_cache(data: Path) -> dict:
    """Open ``data`` mapped in a fresh process (building its cache if needed): time and peak memory."""
    return _child(["--child", "open", "--data", str(data), "--memory", "map"])


def part_epoch(args: argparse.Namespace) -> dict:
    data = _dataset(args)
    build = _build_cache(data)
    drop_from_page_cache(Path(build["cache_file"]))
    epoch = _child(["--child", "epoch", "--data", str(data), "--model", args.model, "--memory", args.memory]
                   + (["--rows", str(args.rows)] if args.rows else []))
    return {"data": str(data), "model": args.model, "memory": args.memory, "open": build, "epoch": epoch,
            "peak_anonymous_gib": epoch["peak_anonymous_bytes"] / GIB, "peak_rss_gib": epoch["peak_rss_bytes"] / GIB,
            "target_gib": 2.0, "machine_after": machine()}


def part_share(args: argparse.Namespace) -> dict:
    data = _dataset(args)
    _build_cache(data)
    port = _free_port()
    procs, outs = [], []
    for rank in range(args.processes):
        out = Path(tempfile.mkstemp(prefix=f"scale-share-{rank}-", suffix=".json")[1])
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(args.processes),
               "LOCAL_WORLD_SIZE": str(args.processes), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        command = [sys.executable, __file__, "--child", "share", "--data", str(data), "--memory", args.memory,
                   "--share-steps", str(args.share_steps), "--out", str(out), "--threads", str(args.threads or 1)]
        procs.append(subprocess.Popen(command, env=env))
        outs.append(out)
    codes = [p.wait() for p in procs]
    if any(codes):
        raise RuntimeError(f"share: processes exited with {codes}")
    ranks = [json.loads(out.read_text()) for out in outs]
    for out in outs:
        out.unlink()
    data_bytes = sum(r["data_memory_bytes"] for r in ranks)
    return {"data": str(data), "memory": args.memory, "processes": args.processes, "ranks": ranks,
            "data_memory_sum_gib": data_bytes / GIB, "tensor_gib": ranks[0]["tensor_bytes"] / GIB,
            "private_data_memory_sum_gib": sum(r["private_data_bytes"] for r in ranks) / GIB,
            "machine_after": machine()}


def part_throughput(args: argparse.Namespace) -> dict:
    data = _dataset(args)
    _build_cache(data)
    return _child(["--child", "throughput", "--data", str(data), "--model", args.model, "--rows", str(args.rows or 3200),
                   "--repeat", str(args.repeat)])


def part_order(args: argparse.Namespace) -> dict:
    data = _dataset(args)
    cache_file = _build_cache(data)["cache_file"]
    passes: dict[str, list[dict]] = {"shuffled": [], "sorted": []}
    for round_ in range(args.repeat):
        for order in (("shuffled", "sorted") if round_ % 2 == 0 else ("sorted", "shuffled")):
            passes[order].append(_child(["--child", "order", "--data", str(data), "--order", order, "--cache-file", cache_file,
                                         *(["--batches", str(args.batches)] if args.batches else [])]))
            print(f"round {round_ + 1} {order}: from disk {passes[order][-1]['cold_s']:.2f} s, from the page cache "
                  f"{passes[order][-1]['warm_s']:.2f} s", file=sys.stderr)
    median = {order: {when: statistics.median(run[when] for run in runs) for when in ("cold_s", "warm_s")}
              for order, runs in passes.items()}
    return {"data": str(data), "batches": passes["sorted"][0]["batches"], "passes": passes, "median_s": median,
            "sorted_over_shuffled_cold": median["sorted"]["cold_s"] / median["shuffled"]["cold_s"],
            "identical_batches": all(run["digest"] == passes["shuffled"][0]["digest"] for runs in passes.values()
                                     for run in runs),
            "machine": machine()}


def _child(arguments: list[str]) -> dict:
    threads = ["--threads", str(torch.get_num_threads())]
    done = subprocess.run([sys.executable, __file__, *arguments, *threads], stdout=subprocess.PIPE, check=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- what the child processes do ----------------------------------------------------------------


def child_open(args: argparse.Namespace) -> dict:
    from fusionzoo.data import ReplicatorDataset

    with PeakSampler() as peak:
        started = time.perf_counter()
        ds = ReplicatorDataset(args.data, memory=args.memory, progress=False)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "from_cache": ds.from_cache, "memory_mode": ds.memory_mode,
            "cache_file": str(ds.cache_file), "cache_bytes": ds.cache_file.stat().st_size, "tensor_bytes": ds.nbytes(),
            "samples": len(ds), "peak_anonymous_bytes": peak.anonymous, "peak_rss_bytes": peak.resident}


def _splits(args: argparse.Namespace):
    from fusionzoo.data import ReplicatorDataset, course_splits

    ds = ReplicatorDataset(args.data, memory=args.memory, progress=False)
    train, valid = course_splits(ds)
    return ds, train, valid


def _first_rows(samples, rows: int):
    """The first ``rows`` samples as views (a mapped dataset stays mapped)."""
    from fusionzoo.data import Samples

    return Samples(samples.rgb[:rows], samples.depth[:rows], samples.targets[:rows], samples.azimuth, samples.zenith,
                   samples.hit_threshold, samples.source, mapped=samples.mapped)


def child_epoch(args: argparse.Namespace) -> dict:
    import fusionzoo
    from fusionzoo.data import BatchLoader

    torch.manual_seed(0)
    with PeakSampler() as peak:
        ds, train, valid = _splits(args)
        opened = rollup()
        # An epoch's batches, every one drawn from the samples (the data side of an epoch: every page).
        started = time.perf_counter()
        drawn = sum(len(batch[2]) for batch in BatchLoader(train, 32, generator=torch.Generator().manual_seed(0)))
        data_pass_s = time.perf_counter() - started
        after_data_pass = dict(peak.peak)
        trained = _first_rows(train, args.rows) if args.rows else train
        model = fusionzoo.create(args.model)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="scale-epoch-") as run:
            history = fusionzoo.fit(model, trained, valid, epochs=1, device="cpu", checkpoint_dir=run, progress=True)
        seconds = time.perf_counter() - started
    record = history.epochs[0]
    return {"samples": len(ds), "train": len(train), "trained": len(trained), "valid": len(valid),
            "memory_mode": ds.memory_mode, "data_pass_samples": drawn, "data_pass_s": data_pass_s,
            "peak_after_data_pass": after_data_pass, "seconds": seconds, "train_seconds": record.train_seconds,
            "train_samples_per_s": len(trained) // 32 * 32 / record.train_seconds,
            "train_loss": record.train_loss, "valid_loss": record.valid_loss,
            "anonymous_after_open": opened["Anonymous"], "peak": peak.peak,
            "peak_anonymous_bytes": peak.anonymous, "peak_rss_bytes": peak.resident,
            "cache_mapping_at_end": mapping_of(Path(ds.cache_file)), "tensor_bytes": ds.nbytes()}


def child_share(args: argparse.Namespace) -> dict:
    import torch.distributed as dist

    import fusionzoo
    from fusionzoo.data import BatchLoader

    dist.init_process_group("gloo")
    before = _settled_anonymous()
    ds, train, valid = _splits(args)
    # Every sample read once, as an evaluation over the whole dataset would read them.
    for _ in BatchLoader(ds, 256, shuffle=False, drop_last=False):
        pass
    after_read = {**rollup(), "Anonymous": _settled_anonymous()}
    mapped = mapping_of(Path(ds.cache_file))
    dist.barrier()  # both processes have read everything: the pages are shared now, or not
    shared_view = mapping_of(Path(ds.cache_file))
    torch.manual_seed(0)
    model = fusionzoo.create("matmul")
    steps = args.share_steps
    started = time.perf_counter()
    with PeakSampler() as peak:
        fusionzoo.fit(model, _first_rows(train, steps * 32 * dist.get_world_size()), None, epochs=1, device="cpu",
                      progress=False)
    seconds = time.perf_counter() - started
    end = mapping_of(Path(ds.cache_file))
    dist.barrier()
    anonymous_added = after_read["Anonymous"] - before
    result = {
        "rank": dist.get_rank(), "memory_mode": ds.memory_mode, "tensor_bytes": ds.nbytes(),
        "anonymous_before_open": before, "anonymous_after_reading_all": after_read["Anonymous"],
        "anonymous_added_by_data": anonymous_added, "cache_mapping_after_reading": mapped,
        "cache_mapping_once_all_read": shared_view, "cache_mapping_after_training": end,
        "data_memory_bytes": max(anonymous_added, 0) + shared_view["Pss"],
        "private_data_bytes": max(anonymous_added, 0) + shared_view["Private_Dirty"],
        "train_steps": steps, "train_seconds": seconds, "peak_during_training": peak.peak,
    }
    dist.destroy_process_group()
    Path(args.out).write_text(json.dumps(result))
    return {"rank": result["rank"], "written": args.out}


def _settled_anonymous() -> int:
    """Anonymous memory once freed blocks went back to the system (glibc keeps freed batches otherwise)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    return rollup()["Anonymous"]


def child_throughput(args: argparse.Namespace) -> dict:
    import fusionzoo
    from fusionzoo.data import ReplicatorDataset, course_splits

    sets = {}
    for memory in ("load", "map"):
        ds = ReplicatorDataset(args.data, memory=memory, progress=False)
        sets[memory] = (ds, _first_rows(course_splits(ds)[0], args.rows))
    assert sets["map"][0].memory_mode == "map" and sets["load"][0].memory_mode == "load"
    rates: dict[str, list[float]] = {"load": [], "map": []}
    assembly: dict[str, list[float]] = {"load": [], "map": []}
    order = list(torch.randperm(len(sets["load"][0]), generator=torch.Generator().manual_seed(0)).split(32))
    for round_ in range(args.repeat):
        for memory in (("load", "map") if round_ % 2 == 0 else ("map", "load")):
            ds, train = sets[memory]
            started = time.perf_counter()
            for index in order:
                ds.batch(index)
            assembly[memory].append(time.perf_counter() - started)
            torch.manual_seed(0)
            model = fusionzoo.create(args.model)
            started = time.perf_counter()
            fusionzoo.fit(model, train, None, epochs=1, device="cpu", progress=False)
            rates[memory].append(len(train) // 32 * 32 / (time.perf_counter() - started))
            print(f"round {round_ + 1} {memory}: {rates[memory][-1]:.1f} samples/s, batch pass "
                  f"{assembly[memory][-1]:.2f} s", file=sys.stderr)
    identical = all(torch.equal(a, b) for index in order[:50]
                    for a, b in zip(sets["load"][0].batch(index), sets["map"][0].batch(index)))
    best = {memory: max(runs) for memory, runs in rates.items()}
    fastest = {memory: min(runs) for memory, runs in assembly.items()}
    return {"data": str(args.data), "model": args.model, "rows": args.rows, "samples": len(sets["map"][0]),
            "fit_samples_per_s": rates, "best_samples_per_s": best, "map_over_load": best["map"] / best["load"],
            "batch_pass_s": assembly, "fastest_batch_pass_s": fastest,
            "batch_pass_map_over_load": fastest["load"] / fastest["map"], "identical_batches": identical,
            "machine": machine()}


def child_order(args: argparse.Namespace) -> dict:
    from fusionzoo.data import ReplicatorDataset

    ds = ReplicatorDataset(args.data, memory="map", progress=False)
    # After the open (which reads the header): the rows' pages, mapped but not yet touched, can go.
    drop_from_page_cache(Path(args.cache_file))
    order = list(torch.randperm(len(ds), generator=torch.Generator().manual_seed(0)).split(32))[:args.batches]

    def read(index: torch.Tensor) -> list[torch.Tensor]:
        if args.order == "shuffled":
            return ds.batch(index)
        ascending, drawn = index.sort()
        back = torch.empty_like(drawn)
        back[drawn] = torch.arange(len(drawn))
        return [t.index_select(0, back) for t in ds.batch(ascending)]

    seconds, digest = [], 0.0
    for _ in ("cold", "warm"):
        started = time.perf_counter()
        for index in order:
            rgb, xyza, targets = read(index)
        seconds.append(time.perf_counter() - started)
    for index in order[:20]:  # the same batches either way: a weighted sum of the first 20
        rgb, xyza, targets = read(index)
        digest += float((rgb.double() * torch.arange(1, len(rgb) + 1).view(-1, 1, 1, 1)).sum())
    return {"order": args.order, "batches": len(order), "cold_s": seconds[0], "warm_s": seconds[1], "digest": digest}


CHILDREN = {"open": child_open, "epoch": child_epoch, "share": child_share, "throughput": child_throughput,
            "order": child_order}


# --- report -------------------------------------------------------------------------------------


def report(part: str, r: dict) -> str:
    if part == "generate":
        rounds = ", ".join(f"{x:.2f}" for x in r["speedup_per_round"])
        busy = ", ".join(f"{x:.2f}" for x in r["cores_busy_2_workers"])
        return (f"generate {r['samples']} scenes: 2 workers {r['speedup_2_over_1']:.2f}x one (median of the rounds' "
                f"ratios {rounds}); fastest runs 1 worker {r['best_s']['1']:.1f} s, 2 workers {r['best_s']['2']:.1f} s "
                f"-> {r['speedup_fastest_over_fastest']:.2f}x; CPU seconds 1 worker "
                f"{', '.join(f'{x:.1f}' for x in r['cpu_seconds']['1'])}, 2 workers "
                f"{', '.join(f'{x:.1f}' for x in r['cpu_seconds']['2'])}; cores kept busy by 2 workers {busy}; "
                f"files {'identical' if r['identical_files'] else 'DIFFERENT'}; "
                f"load average {r['machine_before']['load_average_1_5_15']} -> {r['machine_after']['load_average_1_5_15']}")
    if part == "epoch":
        e = r["epoch"]
        return (f"epoch of {r['model']} on {e['train']} samples ({r['memory']}: {e['memory_mode']}), "
                f"{e['seconds']:.0f} s: peak anonymous {r['peak_anonymous_gib']:.2f} GiB (target < 2), peak resident "
                f"{r['peak_rss_gib']:.2f} GiB, tensors {e['tensor_bytes'] / GIB:.2f} GiB; cache opened in "
                f"{r['open']['seconds']:.0f} s (from cache: {r['open']['from_cache']}, peak anonymous "
                f"{r['open']['peak_anonymous_bytes'] / GIB:.2f} GiB)")
    if part == "share":
        lines = [f"{r['processes']} process(es), memory={r['memory']}, tensors {r['tensor_gib']:.2f} GiB: data memory "
                 f"(anonymous added + Pss of the cache) summed {r['data_memory_sum_gib']:.2f} GiB, private "
                 f"{r['private_data_memory_sum_gib']:.2f} GiB"]
        for rank in r["ranks"]:
            lines.append(f"  rank {rank['rank']}: anonymous added {rank['anonymous_added_by_data'] / GIB:.3f} GiB, cache "
                         f"Rss {rank['cache_mapping_once_all_read']['Rss'] / GIB:.2f} GiB, Pss "
                         f"{rank['cache_mapping_once_all_read']['Pss'] / GIB:.2f} GiB; {rank['train_steps']} DDP steps "
                         f"in {rank['train_seconds']:.0f} s")
        return "\n".join(lines)
    if part == "order":
        m = r["median_s"]
        return (f"{r['batches']} shuffled batches of 32 from the map (median of {len(r['passes']['sorted'])} rounds): "
                f"from disk shuffled {m['shuffled']['cold_s']:.2f} s, sorted {m['sorted']['cold_s']:.2f} s "
                f"(sorted/shuffled {r['sorted_over_shuffled_cold']:.2f}); from the page cache shuffled "
                f"{m['shuffled']['warm_s']:.2f} s, sorted {m['sorted']['warm_s']:.2f} s; batches "
                f"{'identical' if r['identical_batches'] else 'DIFFERENT'}")
    return (f"throughput of {r['model']} on {r['rows']} rows: load {r['best_samples_per_s']['load']:.1f}, map "
            f"{r['best_samples_per_s']['map']:.1f} samples/s -> map/load {r['map_over_load']:.3f}; batch pass over "
            f"{r['samples']} samples: load {r['fastest_batch_pass_s']['load']:.2f} s, map "
            f"{r['fastest_batch_pass_s']['map']:.2f} s; batches {'identical' if r['identical_batches'] else 'DIFFERENT'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=PARTS, action="append", help="part(s) to run (default: all, in order)")
    parser.add_argument("--samples", type=int, default=10_000, help="scenes to generate (default 10000)")
    parser.add_argument("--data", type=Path, help="dataset folder (default: generate the default scene under --dir)")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where generated data go (default: the temp folder)")
    parser.add_argument("--model", default="matmul", help="model trained (default matmul)")
    parser.add_argument("--memory", default="map", choices=["map", "load", "auto"], help="epoch and share: how data are held")
    parser.add_argument("--processes", type=int, default=2, help="share: processes (default 2)")
    parser.add_argument("--share-steps", type=int, default=20, help="share: DDP training steps (default 20)")
    parser.add_argument("--rows", type=int, help="epoch: train on the first ROWS samples only; throughput: rows (3200)")
    parser.add_argument("--repeat", type=int, default=2, help="generate, throughput and order: interleaved rounds (default 2)")
    parser.add_argument("--batches", type=int, help="order: the first BATCHES shuffled batches (default all)")
    parser.add_argument("--order", choices=["shuffled", "sorted"], help=argparse.SUPPRESS)
    parser.add_argument("--cache-file", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help="torch threads of each process (default: torch's choice; 1 helps "
                                                    "on a machine that other jobs keep busy)")
    parser.add_argument("--json", type=Path, help="write the figures here (JSON)")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(CHILDREN[args.child](args)))
        return
    results = {}
    for part in args.part or PARTS:
        results[part] = globals()[f"part_{part}"](args)
        print(report(part, results[part]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
