"""The FLOPs counter reproduces the paper's Table II and falls with the keep ratio."""
import json

import pytest

from mmtok_ros.cli import main
from mmtok_ros.model import MultiModalTransformer, preset
from mmtok_ros.model.flops import count_flops
from mmtok_ros.model.keep_ratio import gamma_from_budget


def flops_cli(capsys, *args):
    assert main(['flops', '--json', *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_mha_on_paper_deepsense_reproduces_table_ii(capsys):
    result = flops_cli(capsys, '--preset', 'paper-deepsense', '--method', 'mha')
    assert result['gflops'] == pytest.approx(292.19, rel=0.01)
    assert result['n_tokens'] == 11746


def test_routed_gamma_03_reproduces_table_ii(capsys):
    result = flops_cli(capsys, '--preset', 'paper-deepsense', '--method', 'routed', '--gamma', '0.3')
    assert result['gflops'] == pytest.approx(28.60, rel=0.03)
    assert result['tokens_per_layer'] == [round(0.3 * 11746)] * 8


def test_flops_fall_with_gamma_and_routers_are_counted():
    gflops = [count_flops(MultiModalTransformer(preset('rsu-cpu', target_keep_ratio=g)))
              for g in (0.3, 0.5, 0.7, 1.0)]
    values = [g['gflops'] for g in gflops]
    assert values == sorted(values) and values[0] < values[-1] / 5
    assert all(g['router_gflops'] > 0 for g in gflops)
    mha = count_flops(MultiModalTransformer(preset('rsu-cpu', method='mha')))
    # gamma' = 1 does everything mha does, plus the routers
    assert gflops[-1]['gflops'] == pytest.approx(mha['gflops'] + gflops[-1]['router_gflops'])


def test_exact_gamma_meets_the_budget_and_the_papers_rule_is_reported():
    budget = gamma_from_budget('paper-deepsense', 28.6)
    model = MultiModalTransformer(preset('paper-deepsense', target_keep_ratio=budget['gamma_exact']))
    assert count_flops(model)['gflops'] == pytest.approx(28.6, rel=0.01)
    assert budget['gamma_paper'] == pytest.approx((28.6 / budget['flops_max_gflops']) ** 0.5)


def test_handover_preset_has_the_issue_token_count():
    assert preset('paper-handover').n_tokens == 5 * (1024 + 1024 + 1) + 1
    assert 2400 <= preset('rsu-cpu').n_tokens <= 2600
