"""visionfw.files.write_file_atomic: the one atomic write (temporary file in the folder, mode, clean-up)."""

import errno
import os

import pytest

from visionfw.files import new_file_mode, temp_files, write_file_atomic


def test_writes_creates_folders_and_gets_a_new_files_mode(tmp_path):
    target = tmp_path / "a" / "b" / "x.bin"
    out = write_file_atomic(target, lambda f: f.write(b"abc"))
    assert out == target and target.read_bytes() == b"abc"
    assert os.stat(target).st_mode & 0o777 == new_file_mode()  # not mkstemp's 0600
    assert os.listdir(target.parent) == ["x.bin"]
    write_file_atomic(target, lambda f: f.write(b"new"))  # replaces
    assert target.read_bytes() == b"new" and os.listdir(target.parent) == ["x.bin"]


def test_new_file_mode_is_0666_less_the_umask():
    old = os.umask(0o027)
    try:
        assert new_file_mode() == 0o640
    finally:
        os.umask(old)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "x.json"
    target.write_bytes(b"old")

    def full_disk(f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        write_file_atomic(target, full_disk)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["x.json"]


def test_by_name_passes_a_temporary_path_with_the_suffix(tmp_path):
    seen = []

    def save(path):
        seen.append(path)
        with open(path, "wb") as f:
            f.write(b"zip")

    target = tmp_path / "model.keras"
    write_file_atomic(target, save, by_name=True)
    assert seen[0].endswith(".keras") and os.path.dirname(seen[0]) == str(tmp_path)
    assert target.read_bytes() == b"zip" and os.listdir(tmp_path) == ["model.keras"]


def test_temp_files_finds_what_a_killed_write_left(tmp_path):
    (tmp_path / ".x.json.k3j2.tmp").write_bytes(b"")
    (tmp_path / ".model.keras.a1.tmp.keras").write_bytes(b"")
    (tmp_path / "x.json").write_bytes(b"")
    assert [os.path.basename(p) for p in temp_files(tmp_path)] == [".model.keras.a1.tmp.keras", ".x.json.k3j2.tmp"]
