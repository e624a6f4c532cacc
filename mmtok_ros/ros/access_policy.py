"""What each RSU node publishes, subscribes to and serves, and an SROS2 access-control policy
that grants exactly that (``mmtok sros2-policy``).

ROS-free (no rclpy): the policy can be written on any machine. ``rsu_node`` takes its input
topics (``rsu_inputs``), its neighbours (``neighbour_ids``, ``neighbour_status_topic``) and
``DIAGNOSTICS_TOPIC`` from here and every other name from its parameter table
(``params.RSU_NODE_PARAMS``), so the policy follows the code; test/test_sros2_policy.py
compares it with the ROS graph of running nodes. The file format is the ``sros2`` policy
(``<policy version="0.2.0"><enclaves><enclave path=..><profiles><profile ns=.. node=..>``)
that ``ros2 security create_permission`` turns into a signed DDS permissions document.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Mapping
from xml.sax.saxutils import escape, quoteattr

from .params import RSU_NODE_PARAMS, defaults

DIAGNOSTICS_TOPIC = '/diagnostics'
POLICY_VERSION = '0.2.0'

# What rclpy itself creates for every node (not our code; the graph test checks them too)
ROSOUT, PARAMETER_EVENTS, CLOCK = '/rosout', '/parameter_events', '/clock'
PARAMETER_SERVICES = ('describe_parameters', 'get_parameter_types', 'get_parameters',
                      'list_parameters', 'set_parameters', 'set_parameters_atomically')
TYPE_DESCRIPTION_SERVICE = 'get_type_description'
# ... and for a lifecycle node (rclpy.lifecycle): its services and ~/transition_event
LIFECYCLE_SERVICES = ('change_state', 'get_available_states', 'get_available_transitions',
                      'get_state', 'get_transition_graph')
LIFECYCLE_EVENTS = 'transition_event'


def neighbour_ids(p: Any) -> list[str]:
    """The ``neighbours`` parameter as a list of RSU ids."""
    return [n.strip() for n in p.neighbours.split(',') if n.strip()]


def neighbour_status_topic(rsu: str, link_status_topic: str) -> str:
    """A neighbour's own link status: its namespace is its id (rsu.launch.py)."""
    return f'/{rsu}/{link_status_topic.lstrip("/")}'


def rsu_inputs(p: Any) -> dict[str, str]:
    """rsu_node's sensor subscriptions: topic -> role (image, lidar, rssi/rsuK)."""
    roles = {p.image_topic: 'image', p.lidar_topic: 'lidar'}
    roles.update({t: f'rssi/rsu{i + 1}' for i, t in enumerate(p.rssi_topics)})
    return roles


def resolve(name: str, namespace: str, node: str) -> str:
    """A topic or service name as ROS resolves it for ``node`` in ``namespace``."""
    ns = '/' + namespace.strip('/') if namespace.strip('/') else ''
    if name.startswith('/'):
        return name
    if name.startswith('~'):
        return f'{ns}/{node}/{name[1:].lstrip("/")}'
    return f'{ns}/{name}'


@dataclass
class Profile:
    """One node's grants: fully qualified topic and service names."""

    enclave: str
    namespace: str
    node: str
    publish: set[str] = field(default_factory=set)
    subscribe: set[str] = field(default_factory=set)
    reply: set[str] = field(default_factory=set)       # services it serves
    request: set[str] = field(default_factory=set)     # services it calls


def rsu_profile(params: Mapping[str, Any], *, namespace: str, enclave: str,
                lifecycle: bool = False, node: str = 'rsu_node') -> Profile:
    """The grants of one ``rsu_node`` (or ``rsu_lifecycle_node``) started with ``params``
    (the rest: the parameter table's defaults) in ``namespace``."""
    values = {**defaults(RSU_NODE_PARAMS), 'use_sim_time': False, **params}
    p = SimpleNamespace(**{k.replace('.', '_'): v for k, v in values.items()})

    def fq(names) -> set[str]:
        return {resolve(n, namespace, node) for n in names}

    subscribe = fq([*rsu_inputs(p), *(neighbour_status_topic(n, p.link_status_topic)
                                      for n in neighbour_ids(p))])
    if p.use_sim_time:
        subscribe.add(CLOCK)
    publish = fq([p.link_status_topic, p.handover_topic, DIAGNOSTICS_TOPIC, ROSOUT,
                  PARAMETER_EVENTS])
    services = [*PARAMETER_SERVICES, TYPE_DESCRIPTION_SERVICE]
    if lifecycle:
        publish |= fq([f'~/{LIFECYCLE_EVENTS}'])
        services += LIFECYCLE_SERVICES
    return Profile(enclave, '/' + namespace.strip('/'), node, publish=publish,
                   subscribe=subscribe, reply=fq(f'~/{s}' for s in services))


def multi_rsu_params(n: int) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, parameters) of each RSU as ``multi_rsu.launch.py rsus:=n`` starts them:
    namespace and id ``rsuK``, its own RSSI and its next neighbour's (the last RSU: the one
    before it), every other RSU a neighbour."""
    if n < 2:
        raise ValueError(f'need at least 2 RSUs, got {n}')
    ids = [f'rsu{k}' for k in range(1, n + 1)]
    out = []
    for k, rsu in enumerate(ids):
        neighbour = ids[k + 1] if k + 1 < n else ids[k - 1]
        out.append((rsu, {'rsu_id': rsu, 'target_rsu': neighbour,
                          'neighbours': ','.join(i for i in ids if i != rsu),
                          'rssi_topics': [f'/rssi/{rsu}', f'/rssi/{neighbour}']}))
    return out


def rsu_profiles(n: int, *, enclave_root: str = '/mmtok', lifecycle: bool = False,
                 use_sim_time: bool = False) -> list[Profile]:
    """One profile, in an enclave of its own (``<enclave_root>/rsuK``), per RSU."""
    root = '/' + enclave_root.strip('/')
    return [rsu_profile({**params, 'use_sim_time': use_sim_time}, namespace=ns,
                        enclave=f'{root}/{ns}'.replace('//', '/'), lifecycle=lifecycle)
            for ns, params in multi_rsu_params(n)]


def policy_xml(profiles: list[Profile]) -> str:
    """The sros2 policy document (names sorted; one ``<enclave>`` per distinct enclave)."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<policy version="{POLICY_VERSION}">', '  <enclaves>']
    enclaves: dict[str, list[Profile]] = {}
    for profile in profiles:
        enclaves.setdefault(profile.enclave, []).append(profile)
    for path, members in enclaves.items():
        lines += [f'    <enclave path={quoteattr(path)}>', '      <profiles>']
        for pr in members:
            lines.append(f'        <profile ns={quoteattr(pr.namespace)} '
                         f'node={quoteattr(pr.node)}>')
            for tag, item, rule, names in (('topics', 'topic', 'publish', pr.publish),
                                           ('topics', 'topic', 'subscribe', pr.subscribe),
                                           ('services', 'service', 'reply', pr.reply),
                                           ('services', 'service', 'request', pr.request)):
                if names:
                    lines.append(f'          <{tag} {rule}="ALLOW">')
                    lines += [f'            <{item}>{escape(n)}</{item}>' for n in sorted(names)]
                    lines.append(f'          </{tag}>')
            lines.append('        </profile>')
        lines += ['      </profiles>', '    </enclave>']
    lines += ['  </enclaves>', '</policy>']
    return '\n'.join(lines) + '\n'


def read_policy(text: str) -> list[Profile]:
    """The profiles of a policy document (absolute and ``~`` names resolved)."""
    import xml.etree.ElementTree as ET
    root = ET.fromstring(text)
    if root.tag != 'policy' or root.get('version') != POLICY_VERSION:
        raise ValueError(f'not an sros2 policy version {POLICY_VERSION}')
    out = []
    for enclave in root.iter('enclave'):
        for el in enclave.iter('profile'):
            pr = Profile(enclave.get('path'), el.get('ns'), el.get('node'))
            for group in el:
                for rule in ('publish', 'subscribe', 'reply', 'request'):
                    if group.get(rule) == 'ALLOW':
                        getattr(pr, rule).update(resolve(item.text.strip(), pr.namespace,
                                                         pr.node) for item in group)
            out.append(pr)
    return out


__all__ = ['DIAGNOSTICS_TOPIC', 'Profile', 'multi_rsu_params', 'neighbour_ids',
           'neighbour_status_topic', 'policy_xml', 'read_policy', 'resolve', 'rsu_inputs',
           'rsu_profile', 'rsu_profiles']
