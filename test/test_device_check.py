"""The prepared device check (tools/device_check.sh, mmtok_ros/bench/device_check/) in its
dry mode on this CPU, so it cannot rot before a GPU machine runs it: every part runs at tiny
sizes with ROS imports forbidden, a failing or slow part never loses the others, asking for
CUDA where there is none fails loudly, and the held-out windows it carries are intact."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / 'tools' / 'device_check.sh'


def _env(out: Path) -> dict:
    env = {**os.environ, 'OUT': str(out), 'PYTHON': sys.executable}
    env.pop('CUDA_VISIBLE_DEVICES', None)
    return env


def test_dry_run_on_the_cpu_runs_every_part_without_ros(tmp_path):
    out = subprocess.run([str(SCRIPT), '--device', 'cpu', '--dry', '--threads', '1'],
                         cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    results = json.loads((tmp_path / 'device_check.json').read_text())
    parts = results['parts']
    assert list(parts) == ['env', 'parity', 'table7', 'bench', 'streaming', 'onnx', 'capture']
    assert {n: e['status'] for n, e in parts.items()} == {n: 'ok' for n in parts}, \
        {n: e.get('error') for n, e in parts.items()}
    assert results['ros_modules_loaded'] == [] and results['ros_imports_blocked'] == []
    parity = parts['parity']['result']
    assert parity['routed']['pass'] and parity['mha']['pass']        # CPU against CPU here
    rows = parts['table7']['result']['rows']
    measured = {(r['method'], r['variant']) for r in rows if 'accuracy' in r}
    assert {('routed', 'fp32'), ('routed', 'fp32, K fixed once'), ('routed', 'bf16'),
            ('routed', 'pruned 50%'), ('mha', 'fp32'), ('mha', 'bf16'),
            ('mha', 'pruned 50%')} <= measured
    k_fixed = next(r for r in rows if r['variant'] == 'fp32, K fixed once')
    assert k_fixed['decisions_differing_vs_fp32'] == 0          # the same K, the same model
    assert {r['method'] for r in parts['bench']['result']['rows']} == {'mha', 'routed'}
    streaming = parts['streaming']['result']['rows']
    assert {r['option'] for r in streaming} >= {
        'eager', 'eager, K fixed once', 'static buffers, no capture, K fixed once'}
    static = [r for r in streaming if r['option'].startswith('static buffers')]
    assert static and all(r['max_abs_p_diff_vs_eager'] < 1e-4 and not r['captured']
                          for r in static)           # the CUDA-graph runner minus the capture
    onnx = parts['onnx']['result']
    assert onnx['routed']['frame_ms_median'] > 0 and 'CUDA' in onnx['cuda_execution_provider']
    summary = (tmp_path / 'device_check.md').read_text()
    assert 'Table VII' in summary and 'Device against CPU' in summary
    assert '[device_check' in out.stdout                          # progress lines


def test_one_failing_and_one_slow_part_do_not_lose_the_others(tmp_path, monkeypatch):
    from mmtok_ros.bench import device_check as dc

    def broken(check, res):
        res['partial'] = 1
        raise RuntimeError('boom')

    def slow(check, res):
        import time
        res['before'] = True
        time.sleep(30)

    monkeypatch.setitem(dc.RUNNERS, 'parity', broken)
    monkeypatch.setitem(dc.RUNNERS, 'table7', slow)
    rc = dc.main(['--device', 'cpu', '--dry', '--out', str(tmp_path),
                  '--parts', 'parity,table7,env', '--part-budget', 'table7=1'])
    assert rc == 0
    parts = json.loads((tmp_path / 'device_check.json').read_text())['parts']
    assert parts['parity']['status'] == 'failed' and 'boom' in parts['parity']['error']
    assert parts['parity']['result'] == {'partial': 1}
    assert parts['table7']['status'] == 'timeout' and parts['table7']['result']['before']
    assert parts['env']['status'] == 'ok'
    assert 'Table VII' not in (tmp_path / 'device_check.md').read_text()


def test_cuda_asked_for_on_a_machine_without_it_fails_loudly(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    out = subprocess.run([str(SCRIPT)], cwd=ROOT, env=_env(tmp_path), capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('device_check: error: device ') \
        and 'cuda' in lines[0], out.stderr
    assert not (tmp_path / 'device_check.json').exists()


def test_the_heldout_windows_travel_small_and_intact():
    from mmtok_ros.bench.heldout import DEFAULT_PATH, load, sidecar_path
    from mmtok_ros.model.checkpoint import read_model_file
    from mmtok_ros.model.config import ModelConfig
    from mmtok_ros.model.preprocess import frame_shapes
    assert DEFAULT_PATH.stat().st_size < 5e6
    data = load()                                          # checks the sidecar's sha256
    meta = json.loads(sidecar_path(DEFAULT_PATH).read_text())
    assert meta['made_by'].startswith('python -m mmtok_ros.bench.heldout')
    assert meta['counts']['windows'] == len(data) and meta['counts']['onsets'] >= 1
    cfg = ModelConfig.from_dict(read_model_file(ROOT / 'models' / 'handover_rsu_cpu_g40.pt')
                                ['config'])
    batch = data.batch([0, len(data) - 1])
    for m, shape in frame_shapes(cfg).items():
        assert tuple(batch[m].shape) == (2, cfg.n_frames, *shape)
    assert 0.0 <= float(batch['image'].min()) and float(batch['image'].max()) <= 1.0
    assert set(data.labels.tolist()) == {0.0, 1.0}
    assert (data.labels_h3 >= data.labels).all()
