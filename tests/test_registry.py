import pytest

from tmpbench.errors import TmpbenchError, UnknownNameError
from tmpbench.registry import Registry


def test_register_and_get():
    reg = Registry("widget")

    @reg.register("alpha")
    def alpha():
        return 1

    assert reg.get("alpha")() == 1
    assert "alpha" in reg
    assert reg.names() == ["alpha"]


def test_lazy_entry_is_imported_on_get():
    reg = Registry("widget")
    reg.register_lazy("join", "os.path:join")
    import os.path

    assert reg.get("join") is os.path.join


def test_duplicate_rejected():
    reg = Registry("widget")
    reg.add("a", 1)
    with pytest.raises(TmpbenchError, match="'a' is already registered"):
        reg.add("a", 2)
    with pytest.raises(TmpbenchError, match="already registered"):
        reg.register_lazy("a", "os:getcwd")


def test_unknown_name_suggests():
    reg = Registry("pruner")
    reg.add("magnitude", 1)
    reg.add("random", 2)
    with pytest.raises(UnknownNameError, match=r"unknown pruner 'magnitde'; did you mean 'magnitude'\?"):
        reg.get("magnitde")
    with pytest.raises(UnknownNameError, match=r"unknown pruner 'zzz' \(known: magnitude, random\)"):
        reg.get("zzz")


def test_bad_lazy_target():
    reg = Registry("widget")
    with pytest.raises(TmpbenchError, match="must look like 'module:attr'"):
        reg.register_lazy("x", "os.getcwd")
