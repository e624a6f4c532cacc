"""Domain-randomised blockers (``mmtok simulate --kinds random``): what is drawn, within which
ranges, how often it cuts RSU 1's link, and that the named kinds stay as they were."""
from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import numpy as np
import pytest

from mmtok_ros.constants import S_TH_DBM
from mmtok_ros.sim import camera, channel, lidar, randomized as rnd, scene

sim_mod = importlib.import_module('mmtok_ros.sim.simulate')
PERIOD_S = 0.3
KMH = scene.KMH


def _blocked_rsu1(sc, n_frames: int = rnd.DESIGN_FRAMES) -> np.ndarray:
    """RSU 1's link below S_th per frame (the channel without shadowing: geometry only)."""
    t_s = np.arange(n_frames) * PERIOD_S
    zero = {r: np.zeros_like(t_s) for r in scene.RSU_XYZ_M}
    return sim_mod.channel_truth(sc, t_s, zero)['rssi']['rsu1'] < S_TH_DBM


DRAWN = [rnd.make_random_scenario(i, seed=0) for i in range(200)]   # cheap: no rendering


def test_same_seed_same_draw_other_index_or_seed_another():
    assert rnd.make_random_scenario(7, seed=3) == rnd.make_random_scenario(7, seed=3)
    base = rnd.make_random_scenario(7, seed=3)
    for other in (rnd.make_random_scenario(8, seed=3), rnd.make_random_scenario(7, seed=4)):
        assert other.receiver != base.receiver
        assert other.blockers != base.blockers and other.photometric != base.photometric
    # independent of the other scenarios: index 7 alone is index 7 of a whole run
    assert DRAWN[7] == rnd.make_random_scenario(7, seed=0)
    assert rnd.DESIGN_FRAMES == sim_mod.DEFAULT_FRAMES


def test_drawn_values_are_within_the_documented_ranges():
    named = list(scene.VEHICLES.values()) + [scene.CAR, scene.POLE]
    design_s = rnd.DESIGN_S
    seen = {'designs': set(), 'shapes': set(), 'n_blockers': set(), 'directions': set()}
    for sc in DRAWN:
        rx = sc.receiver
        assert rx.lane in ('mid', 'far') and sc.kind.name == 'random'
        assert 3.0 - 1e-3 <= abs(rx.speed_mps) / KMH <= 10.0 + 1e-3
        assert abs(rx.speed_mps) <= scene.MAX_SPEED_MPS
        end_x = rx.start_x_m + rx.speed_mps * design_s
        if rx.speed_mps > 0:                  # towards RSU 2: in view, within 50 m at the end
            assert -1.0 <= rx.start_x_m <= 12.0 and end_x <= 50.0 + 1e-2
        else:
            assert 28.0 <= rx.start_x_m <= 48.0 and end_x >= -25.0 - 1e-2
        seen['directions'].add(np.sign(rx.speed_mps))
        seen['n_blockers'].add(len(sc.blockers))
        lanes = [t.lane for t, _ in sc.blockers]
        assert rx.lane not in lanes and len(set(lanes)) == len(lanes)
        for (track, v), d in zip(sc.blockers, sc.draws):
            assert isinstance(v, rnd.DrawnVehicle) and v.kind == 'drawn'
            assert 3.5 <= v.length_m <= 19.0 and 1.7 <= v.width_m <= 2.6
            assert 1.5 <= v.height_m <= 4.3
            assert 1.0 - 1e-3 <= abs(track.speed_mps) / KMH <= 10.0 + 1e-3
            assert all(0 <= c <= 255 for c in v.color_rgb)
            assert 0 <= d.colour_hsv[0] <= 1 and 0 <= d.colour_hsv[1] <= 1
            assert 0.05 <= d.colour_hsv[2] <= 1
            assert d.design in ('cut', 'low', 'miss', 'beyond')
            for spec in named:                # drawn values, never a named vehicle verbatim
                assert v.color_rgb != spec.color_rgb
                assert (v.length_m, v.width_m, v.height_m) != (spec.length_m, spec.width_m,
                                                               spec.height_m)
            if v.shape == 'box_with_cab':
                assert 1.6 - 1e-3 <= v.cab_length_m <= min(2.6, 0.35 * v.length_m) + 1e-3
                assert 0.55 * v.height_m - 1e-2 <= v.cab_height_m <= 0.8 * v.height_m + 1e-2
                assert v.cab_end == ('+x' if track.speed_mps >= 0 else '-x')
            else:
                assert v.shape == 'box' and v.cab_profile() is None
            seen['designs'].add(d.design)
            seen['shapes'].add(v.shape)
        p = sc.photometric
        assert 0.7 <= p.gain <= 1.3 and -20.0 <= p.offset_dn <= 20.0
        assert all(0.9 <= c <= 1.1 for c in p.cast_rgb) and 1.0 <= p.noise_sigma_dn <= 5.0
    assert seen == {'designs': {'cut', 'low', 'miss', 'beyond'},
                    'shapes': {'box', 'box_with_cab'}, 'n_blockers': {1, 2},
                    'directions': {-1.0, 1.0}}


def test_most_drawn_scenarios_cut_rsu1s_link_with_time_before_and_after():
    blocked = [_blocked_rsu1(sc) for sc in DRAWN]
    share = np.mean([b.any() for b in blocked])
    assert 0.55 < share < 0.75, share                  # 0.65 designed to, the rest clear
    for sc, b in zip(DRAWN, blocked):
        # the design says what was intended; the channel's verdict agrees with it here
        assert b.any() == sc.kind.blocks, sc.kind.story
        if b.any():                   # a window (5 frames) of clear link before and after
            on = np.flatnonzero(b)
            assert on[0] >= 5 and on[-1] < len(b) - 5, sc.kind.story
    # the sidecar's design flag is the kind's
    assert all(sc.describe()['designed_to_block'] == sc.kind.blocks for sc in DRAWN)


def _cab_vehicle(cab_end: str = '+x') -> rnd.DrawnVehicle:
    return rnd.DrawnVehicle('drawn', 10.0, 2.5, 4.0, (20, 160, 90), 'box_with_cab', 2.5, 2.0,
                            cab_end)


def test_a_cab_is_a_lower_box_for_camera_lidar_and_channel():
    cab = _cab_vehicle()
    plain = scene.VehicleSpec('box', 10.0, 2.5, 4.0, (20, 160, 90))
    lo, hi = np.array([3.0, -6.0, 0.0]), np.array([13.0, -3.5, 4.0])
    (cab_lo, cab_hi), (cargo_lo, cargo_hi) = cab.parts(lo, hi)
    assert cab_hi[2] == 2.0 and cab_lo[0] == cargo_hi[0] == 10.5 and cab_hi[0] == 13.0
    assert cab.cab_profile() == (2.5, 2.0, 1) and _cab_vehicle('-x').cab_profile()[2] == -1
    # camera: the space above the cab shows the background, the plain box covers it
    img_cab, img_box = camera.render([(lo, hi, cab)]), camera.render([(lo, hi, plain)])
    above_cab = camera.project_world(np.array([[11.75, -3.5, 3.0]]))[0]   # on the near side
    u, v = (above_cab[:2] / above_cab[2] * camera.FX_PX + [camera.CX_PX, camera.CY_PX]).astype(int)
    assert np.array_equal(img_cab[v, u], camera.render([])[v, u])
    assert not np.array_equal(img_box[v, u], img_cab[v, u])
    # LiDAR: over the cab's stretch no returns above its height (the plain box has them)
    for spec, top_m in ((cab, 2.1), (plain, 3.0)):
        xyz = lidar.scan([(lo, hi, spec)], np.random.default_rng(0))[:, :3] + lidar.LIDAR_XYZ_M
        over = (xyz[:, 0] > 10.6) & (xyz[:, 0] < 12.9) & (np.abs(xyz[:, 1] + 4.75) < 1.35)
        assert over.any() and (xyz[over, 2].max() < top_m) == (spec is cab)
    # channel: a ray over the cab passes, through the cargo (or the plain box) it is cut
    tx, rx = scene.RSU_XYZ_M['rsu1'], np.array([[28.0, scene.LANE_Y_M['far'], 1.5]])
    los_x = 28.0 * scene.LANE_Y_M['near'] / scene.LANE_Y_M['far']          # 11.3 m, z 3.0 m
    centre = np.array([[los_x - 3.75, scene.LANE_Y_M['near']]])            # cab under the ray
    assert channel.box_blockage_loss_db(tx, rx, centre, 10.0, 4.0, cab=cab.cab_profile()) < 1.0
    assert channel.box_blockage_loss_db(tx, rx, centre, 10.0, 4.0) > 15.0
    assert channel.box_blockage_loss_db(tx, rx, centre + [6.0, 0.0], 10.0, 4.0,
                                        cab=cab.cab_profile()) > 15.0


def test_photometric_jitter_changes_random_images_only():
    sc = DRAWN[1]
    boxes = sc.boxes_at(5.0)
    clean = camera.render(boxes, np.random.default_rng(0))
    assert not np.array_equal(clean, camera.render(boxes, np.random.default_rng(0),
                                                   sc.photometric))
    brighter = camera.render(boxes, None, camera.Photometric(1.2, 5.0, (1.0, 1.0, 1.0), 2.0))
    ratio = (brighter.astype(float).mean() - 5.0) / camera.render(boxes).astype(float).mean()
    assert ratio == pytest.approx(1.2, abs=0.05)           # less what saturates at 255
    # the named kinds carry no jitter: their images are as before (see test_simulate's hashes)
    named = scene.make_scenario(0, seed=0)
    assert named.photometric is None
    named_boxes = named.boxes_at(5.0)
    assert np.array_equal(camera.render(named_boxes, np.random.default_rng(0)),
                          camera.render(named_boxes, np.random.default_rng(0), None))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_random_run_writes_the_draw_and_repeats_byte_for_byte(tmp_path, capsys):
    from mmtok_ros.cli import main

    def run(out: Path) -> None:
        assert main(['simulate', '--out', str(out), '--scenarios', '1', '--frames', '12',
                     '--seed', '3', '--kinds', 'random', '--no-progress']) == 0

    run(tmp_path / 'a')
    assert 'random' in capsys.readouterr().out
    truth = json.loads((tmp_path / 'a' / 'scenario_00.truth.json').read_text())
    sc = rnd.make_random_scenario(0, seed=3)
    assert truth['kind'] == 'random' and truth['designed_to_block'] == sc.kind.blocks
    drawn = truth['drawn']
    assert drawn['photometric'] == json.loads(json.dumps(sc.drawn()['photometric']))
    first = drawn['blockers'][0]
    assert set(first['vehicle']) >= {'length_m', 'width_m', 'height_m', 'color_rgb', 'shape',
                                     'cab_length_m', 'cab_height_m'}
    assert set(first['track']) == {'lane', 'start_x_m', 'speed_mps'}
    assert first['design'] in ('cut', 'low', 'miss', 'beyond') and len(first['colour_hsv']) == 3
    assert truth['blocker_vehicle'] == first['vehicle'] and len(truth['frames']) == 12
    index = json.loads((tmp_path / 'a' / 'index.json').read_text())
    assert index['kind_set'] == 'random' and index['draw_version'] == rnd.DRAW_VERSION
    assert index['scenarios'][0]['drawn'] == drawn
    run(tmp_path / 'b')
    for name in ('scenario_00.truth.json', 'index.json'):
        assert _sha256(tmp_path / 'a' / name) == _sha256(tmp_path / 'b' / name)
    assert index['scenarios'][0]['payload_sha256'] == json.loads(
        (tmp_path / 'b' / 'index.json').read_text())['scenarios'][0]['payload_sha256']


def test_help_and_errors_name_the_random_set(capsys):
    from mmtok_ros.cli import main

    with pytest.raises(SystemExit):
        main(['simulate', '--help'])
    assert 'random' in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"choose from .*'random'"):
        sim_mod.simulate('/nonexistent/x', n_scenarios=1, kind_set='randomised', progress=False)
