"""What the parity-fixture scripts (scripts/make-diffusion-fixture.py, scripts/make-wan-*-fixture.py)
share: their command line and version pin, the `[ok]`/`[FAIL]` checks, the writing of the recorded
tensors and of the JSON manifest, and the closing report (checks passed, a table of the files,
the size budget, the exit status).

The scripts import it by name (`import fixture_common`): Python puts the folder of the script it
runs, scripts/, first on sys.path. It imports nothing of diffusers or transformers, so a script
can use it before it sets their logging up.
"""
import argparse
import importlib.util
import json
import sys
from importlib.metadata import version
from pathlib import Path

from safetensors.torch import save_file

SCRIPTS = Path(__file__).resolve().parent

CHECKS = []  # (what, ok, detail) — printed; any failure makes the script exit 1 in finish()


def check(what, ok, detail=""):
    CHECKS.append((what, bool(ok), detail))
    print(f"  [{'ok' if ok else 'FAIL'}] {what}{(': ' + detail) if detail else ''}")


def parse_args(doc, default_out, pinned):
    """The command line `[OUT_DIR] [--any-version]` (the description is the first paragraph of
    `doc`). Refuses versions other than `pinned` unless --any-version is given; creates OUT_DIR.
    Returns OUT_DIR and the versions found ({package: version}, in the order of `pinned`)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("out", nargs="?", type=Path, default=default_out)
    ap.add_argument("--any-version", action="store_true", help="run with versions other than the pinned ones")
    args = ap.parse_args()
    have = {p: version(p) for p in pinned}
    if have != pinned and not args.any_version:
        raise SystemExit(f"pinned {pinned}, found {have} (scripts/diffusion-fixture-venv.sh makes the venv)")
    args.out.mkdir(parents=True, exist_ok=True)
    return args.out, have


def load_diffusion_helpers():
    """scripts/make-diffusion-fixture.py as a module (its name is not an identifier): seeded
    weights, f16 rounding, state-dict comparisons. Its `check` and `CHECKS` are the ones here."""
    spec = importlib.util.spec_from_file_location("make_diffusion_fixture", SCRIPTS / "make-diffusion-fixture.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def save_io(io, path, meta, key="io_tensors", keep=()):
    """Writes the recorded tensors to `path` (safetensors): in float32, except those whose dtype is
    in `keep` (ids, pixels), which are stored as they are. Lists their shapes by name, sorted, in
    `meta[key]`. Returns the tensors as written."""
    io = {k: (v.detach() if v.dtype in keep else v.detach().float()).contiguous().clone() for k, v in io.items()}
    save_file(io, path)
    meta[key] = {k: list(v.shape) for k, v in sorted(io.items())}
    return io


def write_json(path, meta, **dumps_kw):
    """The JSON manifest: strict JSON (no NaN/Infinity), indent 1, a final newline."""
    path.write_text(json.dumps(meta, indent=1, allow_nan=False, **dumps_kw) + "\n")


def finish(out, budget, files=None):
    """Ends a fixture script: how many checks passed, a table of the files written (`files`, by
    default every file below `out`) and their sizes. Exits 1 if a check failed or if the files
    exceed `budget` bytes."""
    failed = [c for c in CHECKS if not c[1]]
    print(f"\n{len(CHECKS) - len(failed)}/{len(CHECKS)} checks passed")
    if files is None:
        files = (p for p in out.rglob("*") if p.is_file())
    files = sorted(files)
    names = [str(p.relative_to(out)) for p in files]
    sizes = [p.stat().st_size for p in files]
    total = sum(sizes)
    width = max(len(n) for n in names + ["total"]) + 2
    print(f"\n{'file':<{width}}{'bytes':>12}")
    for name, size in zip(names, sizes):
        print(f"{name:<{width}}{size:>12,}")
    print(f"{'total':<{width}}{total:>12,}  ({total / 1e6:.2f} MB)")
    if failed:
        for what, _, detail in failed:
            print(f"FAILED: {what}: {detail}", file=sys.stderr)
        raise SystemExit(1)
    if total > budget:
        raise SystemExit(f"fixtures are {total / 1e6:.2f} MB, over the {budget / 1e6:.1f} MB budget")
