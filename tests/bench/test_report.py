"""bench.report on a hand-written pytest-benchmark file: the op table and the plain table of benchmarks that
recorded no op, with every figure worked out by hand."""

from __future__ import annotations

import json

from bench.report import main


def _results() -> dict:
    op_stats = {"min": 0.001, "max": 0.003, "mean": 0.002, "median": 0.002, "rounds": 4, "q1": 0.0015, "q3": 0.0025,
                "data": [0.001, 0.002, 0.002, 0.003]}
    return {
        "datetime": "2026-12-06T20:00:00+00:00",
        "commit_info": {"id": "0123456789abcdef", "dirty": False},
        "machine_info": {"cpu": {"brand_raw": "Test CPU"}},
        "benchmarks": [
            {"name": "test_loss[a]", "stats": op_stats,
             "extra_info": {"op": "loss", "case": "a", "provider": "fused", "mode": "fwd", "device": "cpu0",
                            "device_type": "cpu", "bytes": 4_000_000}},
            {"name": "test_collate", "extra_info": {"distinct_asvs": 5},
             "stats": {"min": 0.0005, "max": 1.5, "mean": 0.0125, "median": 0.01, "rounds": 7}},
        ],
    }


def test_op_and_plain_tables(tmp_path, capsys):
    path = tmp_path / "out.json"
    path.write_text(json.dumps(_results()))
    assert main([str(path), "--no-plots"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "- out.json: date 2026-12-06T20:00:00+00:00, commit 0123456789" in lines
    # 4 MB in a 2 ms median = 2 GB/s; p20 and p80 interpolated in the four rounds: 1.6 ms and 2.4 ms
    assert "| a | fwd | fused | 2.00 ms | 1.60 ms | 2.40 ms | 4 | 2.00 GB/s |  |  |" in lines
    plain = lines.index("### other benchmarks on Test CPU")
    assert lines[plain + 2 : plain + 5] == [
        "| benchmark | min | median | mean | max | rounds |",
        "|---|---|---|---|---|---|",
        "| test_collate | 500.0 us | 10.00 ms | 12.50 ms | 1.50 s | 7 |",
    ]
    assert not any(line.startswith("| test_loss") for line in lines)


def test_no_plain_table_when_every_benchmark_recorded_an_op(tmp_path, capsys):
    results = _results()
    results["benchmarks"] = results["benchmarks"][:1]
    path = tmp_path / "out.json"
    path.write_text(json.dumps(results))
    assert main([str(path), "--no-plots"]) == 0
    assert "other benchmarks" not in capsys.readouterr().out
