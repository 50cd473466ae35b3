"""Reading the CPU's INT8 instructions (util/cpu.py) from /proc/cpuinfo as Linux writes it, which decides the weight
type of an INT8 ONNX export."""

from __future__ import annotations

from pathlib import Path

import pytest

from detft.util.cpu import has_vnni

# the first lines of one processor's block, as /proc/cpuinfo shows them (flags shortened)
ZEN3 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n"
        "flags\t\t: fpu vme de pse tsc msr pae sse sse2 ht syscall avx f16c fma avx2 bmi2 sha_ni\n")
ZEN4 = ZEN3.replace("cpu family\t: 25\nmodel\t\t: 1", "cpu family\t: 25\nmodel\t\t: 17").replace(
    "avx2 bmi2", "avx2 bmi2 avx512f avx512bw avx512_vnni avx512_bf16")
ALDER_LAKE = ZEN3.replace("AuthenticAMD", "GenuineIntel").replace("avx2 bmi2", "avx2 bmi2 avx_vnni")
ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 asimddp\n"


@pytest.mark.parametrize("text,expected", [(ZEN3, False), (ZEN4, True), (ALDER_LAKE, True), (ARM, None), ("", None)])
def test_has_vnni_reads_the_flags_line(tmp_path: Path, text: str, expected: bool | None):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(text)
    assert has_vnni(cpuinfo) is expected


def test_has_vnni_is_unknown_where_there_is_no_cpuinfo(tmp_path: Path):
    assert has_vnni(tmp_path / "missing") is None
