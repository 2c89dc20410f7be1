"""CPU features for int8 kernels, from /proc/cpuinfo (no dependency), "unknown" where unreadable."""

from zse_infer.runtime.runners.cpu_features import cpu_features, describe

XEON = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU @ 2.20GHz
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw avx512vl

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU @ 2.20GHz
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw avx512vl
"""


def test_reads_the_int8_flags_of_an_intel_xeon_without_vnni(tmp_path):
    (tmp_path / "cpuinfo").write_text(XEON)
    f = cpu_features(tmp_path / "cpuinfo")
    assert (f["vendor"], f["model"]) == ("GenuineIntel", "Intel(R) Xeon(R) CPU @ 2.20GHz")
    assert f["flags"] == ["avx2", "avx512f", "avx512bw"] and f["vnni"] is False
    assert f["u8s8_exact"] is (f["machine"].lower() not in ("x86_64", "amd64"))  # saturating vpmaddubsw on x86
    assert describe(f) == "Intel(R) Xeon(R) CPU @ 2.20GHz [avx2, avx512f, avx512bw]"


def test_vnni_and_amx_count_as_exact_int8(tmp_path):
    (tmp_path / "cpuinfo").write_text(XEON.replace("avx512vl", "avx512vl avx512_vnni amx_tile amx_int8"))
    f = cpu_features(tmp_path / "cpuinfo")
    assert f["vnni"] is True and f["u8s8_exact"] is True and {"avx512_vnni", "amx_int8"} <= set(f["flags"])


def test_unreadable_cpuinfo_says_unknown(tmp_path):
    f = cpu_features(tmp_path / "missing")
    assert f["flags"] == f["vnni"] == f["u8s8_exact"] == "unknown" and "not readable" in f["source"]
    assert "[unknown]" in describe(f)
