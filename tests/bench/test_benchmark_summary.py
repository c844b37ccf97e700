from bench.benchmark_summary import summarise


def _bench(name, group, mean, baseline=False):
    return {"name": name, "group": group, "stats": {"mean": mean}, "extra_info": {"baseline": baseline}}


def test_ratio_is_against_the_group_baseline():
    data = {"benchmarks": [_bench("slow", "g", 2.0, baseline=True), _bench("fast", "g", 0.5),
                           _bench("other", "h", 1.0)]}
    lines = summarise(data)
    fast = next(line for line in lines if "fast" in line)
    assert "4.00x faster than baseline" in fast
    assert "(baseline)" in next(line for line in lines if "slow" in line)
    assert "faster" not in next(line for line in lines if " other" in line)
