"""mmtok bench runs end to end and writes the documented JSON rows (no timing assertions)."""
import json

from mmtok_ros.cli import main


def test_bench_writes_rows_for_every_method_and_gamma(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    assert main(['bench', '--preset', 'rsu-cpu', '--device', 'cpu', '--methods', 'mha,routed,tome',
                 '--gammas', '0.3,0.6', '--reps', '1', '--warmup', '1', '--out', str(out),
                 '--no-progress']) == 0
    rows = json.loads(out.read_text())
    assert [(r['method'], r['gamma']) for r in rows] == [
        ('mha', None), ('routed', 0.3), ('routed', 0.6), ('tome', None)]
    for r in rows:
        for key in ('latency_ms_median', 'latency_ms_p90', 'peak_mem_mb', 'gflops',
                    'tokens_per_layer'):
            assert key in r
        assert r['latency_ms_median'] > 0 and r['latency_ms_p90'] >= r['latency_ms_median']
    by = {(r['method'], r['gamma']): r for r in rows}
    assert by[('routed', 0.3)]['gflops'] < by[('routed', 0.6)]['gflops'] < by[('mha', None)]['gflops']
    assert '| routed | 0.30 |' in capsys.readouterr().out


def test_bench_rejects_unknown_method(tmp_path, capsys):
    assert main(['bench', '--methods', 'nope', '--out', str(tmp_path / 'x.json')]) == 2
    assert 'unknown methods' in capsys.readouterr().err
