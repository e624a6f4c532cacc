"""The proactive metrics over many scenarios, and the four proactive-handover targets
checked on them.

Reads the per-scenario documents of ``reports.emulation.summary`` (each policy's metrics and
the never-worse check); every metric is defined once, in ``metrics.py``. The totals:

* blockages: the proactive policy's ``serving_blockages`` summed; ``before_onset`` (lead > 0)
  and ``in_time`` (lead >= the decision latency) summed, and their shares of the blockages;
* ``proactive_handovers`` and ``spurious_proactive_handovers`` summed, over the summed
  ``clear_link_s`` (``spurious_per_hour``); None if any scenario's causes are unknown;
* the time below S_th of each policy summed (``outage_s``), the outage the proactive policy
  and the oracle save over reactive, and ``outage_saving_fraction``; the scenarios where the
  proactive outage is longer than reactive's (the never-worse check's ``time_below_ok``).

Each target reads PASS, FAIL or N/A (nothing to measure it on: no blockage, no clear link, no
saving for the oracle to make); ``accepted`` is False if any fails, None if any is N/A.
"""
from __future__ import annotations

from typing import Mapping

from .metrics import per_hour, saving_fraction

# the targets a proactive-handover user judges the emulation by
IN_TIME_TARGET_SHARE = 0.8              # of blockages handed over with a lead >= latency
SPURIOUS_TARGET_PER_HOUR = 6.0          # spurious proactive handovers per hour of clear link
OUTAGE_SAVING_TARGET_SHARE = 0.5        # of the oracle's outage saving over reactive
VERDICTS = {True: 'PASS', False: 'FAIL', None: 'N/A'}


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _sum(values) -> float | None:
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


def _pct(value: float | None) -> str:
    return 'n/a' if value is None else f'{100 * value:.1f} %'


def proactive_totals(scenarios: Mapping[str, Mapping], latency_ms: float) -> dict:
    """The totals of the module docstring and the ``acceptance`` lines; ``scenarios``: name ->
    its summary document; ``latency_ms``: the decision latency the run used."""
    mine = {n: s['policies']['proactive'] for n, s in scenarios.items()}
    blockages = sum(m['serving_blockages'] for m in mine.values())
    before = sum(m['handed_over_before_blockage'] for m in mine.values())
    in_time = sum(m['handed_over_in_time'] for m in mine.values())
    made = _sum(m.get('proactive_handovers') for m in mine.values())
    spurious = _sum(m.get('spurious_proactive_handovers') for m in mine.values())
    clear_s = sum(m['clear_link_s'] for m in mine.values())
    outage = {p: sum(s['policies'][p]['time_below_threshold_s'] for s in scenarios.values())
              for p in ('proactive', 'reactive', 'oracle')}
    longer = [n for n, s in scenarios.items() if not s['check']['time_below_ok']]
    windows = {m['spurious_window_s'] for m in mine.values() if 'spurious_window_s' in m}
    doc = {
        'latency_ms': float(latency_ms),
        'blockages': blockages,
        'before_onset': before, 'before_onset_share': _share(before, blockages),
        'in_time': in_time, 'in_time_share': _share(in_time, blockages),
        'proactive_handovers': made, 'spurious_proactive_handovers': spurious,
        'spurious_window_s': max(windows) if windows else None,
        'clear_link_s': clear_s,
        'spurious_per_hour': per_hour(spurious, clear_s),
        'outage_s': outage,
        'outage_saved_s': outage['reactive'] - outage['proactive'],
        'oracle_outage_saved_s': outage['reactive'] - outage['oracle'],
        'outage_saving_fraction': saving_fraction(outage['reactive'], outage['proactive'],
                                                  outage['oracle']),
        'scenarios': len(scenarios),
        'outage_longer_than_reactive_in': longer,
    }
    doc['acceptance'] = acceptance(doc)
    verdicts = [a['passed'] for a in doc['acceptance']]
    doc['accepted'] = (False if False in verdicts else None if None in verdicts else True)
    return doc


def acceptance(t: Mapping) -> list[dict]:
    """The four targets checked on totals of :func:`proactive_totals`, each with its number
    and a line for the reports."""
    lat = t['latency_ms']
    share = t['in_time_share']
    ok_time = None if share is None else share >= IN_TIME_TARGET_SHARE
    rate = t['spurious_per_hour']
    ok_rate = None if rate is None else rate <= SPURIOUS_TARGET_PER_HOUR
    frac = t['outage_saving_fraction']
    ok_save = None if frac is None else frac >= OUTAGE_SAVING_TARGET_SHARE
    n, longer = t['scenarios'], t['outage_longer_than_reactive_in']
    ok_never = None if not n else not longer
    window = t['spurious_window_s']
    out = [
        ('blockages_in_time', ok_time, share,
         f"blockages handed over in time (lead >= latency {lat:.1f} ms): {t['in_time']}/"
         f"{t['blockages']} = {_pct(share)} (target >= {100 * IN_TIME_TARGET_SHARE:.0f} %); "
         f"before the onset (lead > 0): {t['before_onset']}/{t['blockages']} = "
         f"{_pct(t['before_onset_share'])}"),
        ('spurious_per_hour', ok_rate, rate,
         f"spurious proactive handovers: {t['spurious_proactive_handovers']} of "
         f"{t['proactive_handovers']} in {t['clear_link_s'] / 3600:.3f} h "
         f"({t['clear_link_s']:.1f} s) of clear link = "
         + ('n/a' if rate is None else f'{rate:.2f}') + ' per hour (target <= '
         f'{SPURIOUS_TARGET_PER_HOUR:g} per hour, 1 per 10 min; window '
         + ('n/a' if window is None else f'{window:.1f} s') + ')'),
        ('outage_never_longer', ok_never, len(longer),
         f"outage never longer than reactive's: {n - len(longer)}/{n} scenarios"
         + (f" (longer in {', '.join(longer)})" if longer else '')),
        ('outage_saving_fraction', ok_save, frac,
         f"outage saved over reactive: {t['outage_saved_s']:.1f} s of the oracle's "
         f"{t['oracle_outage_saved_s']:.1f} s = {_pct(frac)} (target >= "
         f"{100 * OUTAGE_SAVING_TARGET_SHARE:.0f} %; below S_th: proactive "
         f"{t['outage_s']['proactive']:.1f} s, reactive {t['outage_s']['reactive']:.1f} s, "
         f"oracle {t['outage_s']['oracle']:.1f} s)"),
    ]
    return [{'target': name, 'passed': ok, 'value': value,
             'line': f'{VERDICTS[ok]} {line}'} for name, ok, value, line in out]


__all__ = ['IN_TIME_TARGET_SHARE', 'OUTAGE_SAVING_TARGET_SHARE', 'SPURIOUS_TARGET_PER_HOUR',
           'VERDICTS', 'acceptance', 'proactive_totals']
