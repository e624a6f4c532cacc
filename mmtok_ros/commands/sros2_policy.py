"""mmtok sros2_policy: the SROS2 access-control policy of N RSU nodes (docs/ros_interfaces.md)."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserInputError

HELP = ('Write the SROS2 access-control policy (sros2 policy XML) that grants N rsu_nodes, '
        'one enclave each, exactly the topics and services they create.')


def add_arguments(p) -> None:
    p.add_argument('--rsus', type=int, default=3,
                   help='number of RSUs, laid out as multi_rsu.launch.py rsus:=N (default 3)')
    p.add_argument('--out', type=Path, default=None,
                   help='policy file to write (default: print it)')
    p.add_argument('--enclave-root', default='/mmtok',
                   help='RSU k gets the enclave <root>/rsuk (default /mmtok)')
    p.add_argument('--lifecycle', action='store_true',
                   help='the nodes run as rsu_lifecycle_node: grant its lifecycle services')
    p.add_argument('--use-sim-time', action='store_true',
                   help='the nodes run with use_sim_time:=true: grant /clock')


def run(args) -> int:
    from ..ros.access_policy import policy_xml, rsu_profiles
    if args.rsus < 2:
        raise UserInputError(f'--rsus {args.rsus}: need at least 2 RSUs')
    if not args.enclave_root.startswith('/'):
        raise UserInputError(f'--enclave-root {args.enclave_root!r} must start with /')
    profiles = rsu_profiles(args.rsus, enclave_root=args.enclave_root,
                            lifecycle=args.lifecycle, use_sim_time=args.use_sim_time)
    text = policy_xml(profiles)
    if args.out is None:
        print(text, end='')
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f'wrote {args.out}: {len(profiles)} enclaves '
          f'({", ".join(p.enclave for p in profiles)})')
    return 0
