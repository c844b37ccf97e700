from bench.reports.benchmarks import summary_lines


def _bench(name, group, mean, baseline=False):
    return {"name": name, "group": group, "stats": {"mean": mean}, "extra_info": {"baseline": baseline}}


def test_ratio_is_against_the_group_baseline():
    data = {"benchmarks": [_bench("slow", "g", 2.0, baseline=True), _bench("fast", "g", 0.5),
                           _bench("other", "h", 1.0)]}
    lines = summary_lines(data)
    fast = next(line for line in lines if "fast" in line)
    assert "4.00x faster than baseline" in fast
    assert "(baseline)" in next(line for line in lines if "slow" in line)
    assert "faster" not in next(line for line in lines if " other" in line)


def test_headline_quotes_the_issue_ratios_present_and_says_what_is_missing():
    from bench.reports.benchmarks import headline

    def b(name, mean=1.0, **info):
        return {"name": name, "group": "g", "stats": {"mean": mean}, "extra_info": info}

    data = {"benchmarks": [
        b("test_chunked_prompt_glip_t_parts[glip-t]", cached_over_naive=0.61, cached_over_official_naive=0.47,
          per_chunk_share_of_full_forward=0.6),
        b("test_coco_bbox_speed[hotcoco]", speedup_vs_reference=7.5),
        b("test_harness_overhead[plain]", pipeline="plain", harness_fraction=0.2),
        b("test_harness_overhead[fast]", pipeline="fast", harness_fraction=0.08),
        b("test_postprocess_batched[batched]", 0.5), b("test_postprocess_batched[image-by-image]", 1.0),
    ]}
    text = "\n".join(headline(data))
    assert "cached / naive 0.610 (target <= 0.5); vs the official padded forward 0.470" in text
    assert "800x1333" not in text
    assert "COCO, 5000 images: 7.5x" in text and "LVIS" not in text  # absent benchmarks give no line
    assert "20.0% (plain) -> 8.0% (fast)" in text
    assert "batched 2.00x faster" in text
    assert "not measured, no CUDA device" in text
    data["benchmarks"].append(b("test_glip_t_images_per_s_cuda[1-bf16]", device="NVIDIA H200", dtype="bf16",
                                batch_size=1, images_per_s=12.5))
    assert "glip-t on NVIDIA H200: bf16 batch 1 12.50 images/s" in "\n".join(headline(data))
