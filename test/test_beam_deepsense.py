"""DeepSense 6G loader on a small scenario folder written here (no network): both CSV layouts,
ASCII and binary PLY, and errors that name the file or the column."""
import csv
import re
import struct

import numpy as np
import pytest
from PIL import Image

from mmtok_ros.beam.deepsense import latlon_to_local_m, load_deepsense
from mmtok_ros.beam.errors import DeepSenseLayoutError, PlyError
from mmtok_ros.beam.ply import read_ply
from mmtok_ros.cli import main
from mmtok_ros.model import preset

CFG = preset('beam-mini')
BS_LATLON = (33.4200, -111.9300)
POINTS = np.array([[5.0, 1.0, -0.5, 40.0], [12.0, -3.0, 0.2, 90.0], [20.0, 4.0, 1.0, 10.0]])


def write_ascii_ply(path, points):
    head = ['ply', 'format ascii 1.0', 'comment written by the test',
            f'element vertex {len(points)}', 'property float x', 'property float y',
            'property float z', 'property float intensity', 'end_header']
    path.write_text('\n'.join(head + [' '.join(f'{v:g}' for v in p) for p in points]) + '\n')


def write_binary_ply(path, points, *, truncate=False):
    head = (f'ply\nformat binary_little_endian 1.0\nelement vertex {len(points)}\n'
            'property float x\nproperty float y\nproperty float z\nproperty uchar reflectivity\n'
            'element face 0\nproperty list uchar int vertex_indices\nend_header\n').encode()
    body = b''.join(struct.pack('<fffB', *p[:3], int(p[3])) for p in points)
    path.write_bytes(head + (body[:-3] if truncate else body))


def write_scenario(root, n=8, layout='samples'):
    """A DeepSense-like scenario folder with ``n`` samples of one sequence."""
    for sub in ('unit1/camera_data', 'unit1/lidar_data', 'unit1/radar_data', 'unit2/GPS_data'):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    samples = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (54, 96, 3), dtype=np.uint8)).save(
            root / f'unit1/camera_data/image_{i}.jpg')
        writer = write_ascii_ply if i % 2 else write_binary_ply
        writer(root / f'unit1/lidar_data/lidar_{i}.ply', POINTS + [i, 0, 0, 0])
        cube = (rng.standard_normal((4, 32, 16)) + 1j * rng.standard_normal((4, 32, 16)))
        np.save(root / f'unit1/radar_data/radar_{i}.npy', cube.astype(np.complex64))
        (root / f'unit2/GPS_data/gps_{i}.txt').write_text(
            f'{BS_LATLON[0] + 1e-5 * i:.7f}\n{BS_LATLON[1] - 2e-5:.7f}\n')
        samples.append({'unit1_rgb': f'./unit1/camera_data/image_{i}.jpg',
                        'unit1_lidar': f'./unit1/lidar_data/lidar_{i}.ply',
                        'unit1_radar': f'./unit1/radar_data/radar_{i}.npy',
                        'unit2_loc': f'./unit2/GPS_data/gps_{i}.txt',
                        'unit1_beam': str(10 + i), 'seq_index': '1'})
    (root / 'unit1/bs_loc.txt').write_text(f'{BS_LATLON[0]}\n{BS_LATLON[1]}\n')
    if layout == 'samples':
        rows = [{**s, 'unit1_loc': './unit1/bs_loc.txt'} for s in samples]
    else:  # challenge layout: one row per window, label = beam of the frame after it
        rows = []
        for i in range(n - 5):
            row = {f'{k}_{t + 1}': samples[i + t][k] for t in range(5)
                   for k in ('unit1_rgb', 'unit1_lidar', 'unit1_radar', 'unit2_loc')}
            rows.append({**row, 'unit1_beam': samples[i + 5]['unit1_beam']})
    path = root / 'scenario31.csv'
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


@pytest.mark.parametrize('layout', ['samples', 'windows'])
def test_loader_builds_windows_with_next_frame_zero_based_beams(tmp_path, layout):
    write_scenario(tmp_path, layout=layout)
    data = load_deepsense(tmp_path, CFG)
    assert len(data) == 3                                      # 8 samples -> 3 windows of 5 + 1
    np.testing.assert_array_equal(data.labels, [14, 15, 16])   # beams 15..17, 1-indexed
    assert data.labels.dtype == np.int64
    assert data.frames['image'].shape[1:] == (3, 32, 32)
    assert data.frames['lidar'].shape[1:] == (3, 32, 32)
    assert data.frames['radar'].shape[1:] == (CFG.n_radar_points, 4)
    assert len(data.frames['gps']) == 7          # frames 0-6 stored once; 7 is only a label
    batch, _ = data.batch(np.arange(3))
    assert batch['gps'].shape == (3, 5, 2)


def test_gps_becomes_local_metres_around_the_base_station(tmp_path):
    write_scenario(tmp_path)
    data = load_deepsense(tmp_path / 'scenario31.csv', CFG)
    east_north_m = data.frames['gps'][0] * 50.0
    np.testing.assert_allclose(east_north_m, [-1.855, 0.0], atol=0.01)
    assert latlon_to_local_m(np.array([1e-5, 0.0]), np.zeros(2))[1] == pytest.approx(1.112, 1e-3)


def test_ascii_and_binary_ply_read_the_same_points(tmp_path):
    write_ascii_ply(tmp_path / 'a.ply', POINTS)
    write_binary_ply(tmp_path / 'b.ply', POINTS)
    np.testing.assert_allclose(read_ply(tmp_path / 'a.ply'), POINTS, atol=1e-5)
    np.testing.assert_allclose(read_ply(tmp_path / 'b.ply'), POINTS, atol=1e-5)


def test_truncated_ply_names_the_file(tmp_path):
    write_binary_ply(tmp_path / 'cut.ply', POINTS, truncate=True)
    with pytest.raises(PlyError, match='cut.ply.*bytes'):
        read_ply(tmp_path / 'cut.ply')


def test_wrong_path_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere'):
        load_deepsense(tmp_path / 'nowhere', CFG)


def test_missing_column_names_the_column(tmp_path):
    path = write_scenario(tmp_path)
    text = path.read_text().replace('unit1_radar', 'unit1_radar_raw')
    path.write_text(text)
    with pytest.raises(DeepSenseLayoutError, match="'unit1_radar'.*'radar'"):
        load_deepsense(tmp_path, CFG)


def drop_columns(path, keep):
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    fields = [k for k in rows[0] if keep(k)]
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction='ignore')
        w.writeheader()
        w.writerows(rows)


def missing_named(err) -> set[str]:
    match = re.search(r'missing column\(s\) (.*?) for modalit', str(err))
    assert match, str(err)
    return set(re.findall(r"'([^']+)'", match.group(1)))


WINDOWED = {m: [f'{c}_{t}' for t in range(1, 6)] for m, c in
            (('image', 'unit1_rgb'), ('lidar', 'unit1_lidar'), ('radar', 'unit1_radar'),
             ('gps', 'unit2_loc'))}


@pytest.mark.parametrize('layout, dropped', [
    ('windows', WINDOWED['lidar'] + WINDOWED['radar'] + WINDOWED['gps']),  # images complete
    ('windows', ['unit1_radar_3']),
    ('samples', ['unit1_lidar', 'unit2_loc']),
    ('samples', ['unit1_rgb', 'unit1_lidar', 'unit1_radar', 'unit2_loc']),
])
def test_missing_columns_are_named_exactly(tmp_path, layout, dropped):
    path = write_scenario(tmp_path, layout=layout)
    drop_columns(path, lambda column: column not in dropped)
    with pytest.raises(DeepSenseLayoutError) as err:
        load_deepsense(tmp_path, CFG)
    assert missing_named(err.value) == set(dropped)
    assert ('window rows' in str(err.value)) == (layout == 'windows' or len(dropped) == 4)


def test_missing_file_names_the_row_column_and_file(tmp_path):
    write_scenario(tmp_path)
    (tmp_path / 'unit1/lidar_data/lidar_2.ply').unlink()
    with pytest.raises(FileNotFoundError, match="column 'unit1_lidar'.*lidar_2.ply"):
        load_deepsense(tmp_path, CFG)


def test_beam_out_of_range_names_the_row(tmp_path):
    path = write_scenario(tmp_path)
    path.write_text(path.read_text().replace(',17,1', ',65,1'))
    with pytest.raises(DeepSenseLayoutError, match="row 8.*'65'.*1 ... 64"):
        load_deepsense(tmp_path, CFG)


def test_cli_reports_a_bad_path_in_one_line(tmp_path, capsys):
    code = main(['evaluate', '--task', 'beam', '--data', str(tmp_path / 'missing'),
                 '--out', str(tmp_path / 'out'), '--no-progress'])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('mmtok evaluate: error:') and 'missing' in err and '\n' not in err
