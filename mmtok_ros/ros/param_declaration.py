"""How a node parameter is declared on an rclpy node: typed, ranged, described, checked.

A :class:`ParamSpec` is one row of the parameter tables (``ros/params.py``). rclpy checks types
and ranges itself, but its refusals do not name the parameter in words a user can act on, and
it refuses an integer for a float (``-p deadline_ms:=100``). So :func:`declare` reads each
start-up value through a declaration that lets any value through, checks it here
(:func:`check_value`) and declares it again with its type; run-time changes are checked by
:class:`RuntimeParameters`. rclpy is imported inside the functions: the specs and the checks
work without ROS.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Callable


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter: its name, default (whose type is the parameter's type), what it
    means (unit and range included), the range of a number, and whether it is fixed at start."""

    name: str
    default: Any
    description: str
    min_value: float | None = None
    max_value: float | None = None
    read_only: bool = False


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return 'bool'
    if isinstance(value, (list, tuple)):
        return 'string array' if all(isinstance(v, str) for v in value) else 'array'
    return {int: 'integer', float: 'float', str: 'string'}.get(type(value), type(value).__name__)


def check_value(spec: ParamSpec, value: Any) -> tuple[Any, str | None]:
    """(value in the spec's type, None) or (value, reason it is rejected).

    An integer is accepted for a float parameter (``-p deadline_ms:=100``: ROS users type
    integers); any other type mismatch, and a value outside [min_value, max_value], is a reason.
    """
    want = spec.default
    if isinstance(want, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    same_type = (isinstance(value, bool) == isinstance(want, bool)
                 and isinstance(value, type(want)) or
                 (isinstance(want, list) and isinstance(value, (list, tuple))
                  and all(isinstance(v, str) for v in value)))
    if not same_type:
        return value, (f'parameter {spec.name} must be of type {_type_name(want)}, got '
                       f'{_type_name(value)} {value!r}')
    if spec.min_value is not None and not isinstance(value, bool) \
            and isinstance(value, (int, float)) \
            and not spec.min_value <= value <= spec.max_value:
        return value, (f'parameter {spec.name} = {value!r} is out of range '
                       f'[{spec.min_value:g}, {spec.max_value:g}]')
    if isinstance(value, tuple):
        value = list(value)
    return value, None


def _descriptor(s: ParamSpec, *, read_only: bool, typed: bool = True,
                ranged: bool = True) -> Any:
    """``typed=False``: dynamic typing (any type gets through to our own check, which gives
    a reason a user can read); ``ranged=False``: no range either (to read a bad override)."""
    from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                    ParameterType)
    kwargs: dict[str, Any] = {'description': s.description, 'read_only': read_only}
    if not typed:
        kwargs['dynamic_typing'] = True
    elif isinstance(s.default, bool):
        kwargs['type'] = ParameterType.PARAMETER_BOOL
    elif isinstance(s.default, int):
        kwargs['type'] = ParameterType.PARAMETER_INTEGER
    elif isinstance(s.default, float):
        kwargs['type'] = ParameterType.PARAMETER_DOUBLE
    elif isinstance(s.default, list):
        kwargs['type'] = ParameterType.PARAMETER_STRING_ARRAY
    else:
        kwargs['type'] = ParameterType.PARAMETER_STRING
    if not ranged or s.min_value is None or isinstance(s.default, bool):
        pass
    elif isinstance(s.default, int):
        kwargs['integer_range'] = [IntegerRange(from_value=int(s.min_value),
                                                to_value=int(s.max_value), step=1)]
    elif isinstance(s.default, float):
        kwargs['floating_point_range'] = [FloatingPointRange(
            from_value=float(s.min_value), to_value=float(s.max_value), step=0.0)]
    return ParameterDescriptor(**kwargs)


def _declare_one(node: Any, s: ParamSpec) -> Any:
    """Declare ``s``; returns its checked value. Raises StartupError with one clear line.

    Read-only parameters are declared with their type; the others with dynamic typing, so
    that a run-time change of the wrong type reaches :class:`RuntimeParameters` and is
    refused with a readable reason (rclpy's own type check says "expected '3' got '4'").
    """
    from rclpy.exceptions import ParameterException

    from .node_lifetime import StartupError
    typed = s.read_only
    try:
        value = node.declare_parameter(s.name, s.default,
                                       _descriptor(s, read_only=s.read_only, typed=typed)).value
    except ParameterException:
        # The override has another type (an integer for a float, a string for a number) or
        # lies out of range: read it through an unchecked declaration, then check it below.
        value = node.declare_parameter(s.name, s.default, _descriptor(
            s, read_only=False, typed=False, ranged=False)).value
        node.undeclare_parameter(s.name)
    checked, reason = check_value(s, value)
    if reason is not None:
        raise StartupError(f'cannot start: {reason}')
    if not node.has_parameter(s.name) or type(checked) is not type(value):
        # declare again, with the value converted to the parameter's type (100 -> 100.0)
        if node.has_parameter(s.name):
            node.undeclare_parameter(s.name)
        try:
            node.declare_parameter(s.name, checked,
                                   _descriptor(s, read_only=s.read_only, typed=typed),
                                   ignore_override=True)
        except ParameterException as err:
            raise StartupError(f'cannot start: parameter {s.name}: {err}') from None
    return checked


class RuntimeParameters:
    """Run-time changes of declared parameters: validated, then applied to the namespace.

    Registered on the node by :func:`declare`. A set request (``ros2 param set``, the
    ``~/set_parameters`` service) is rejected with a reason when it names a read-only
    parameter, has the wrong type or lies outside the parameter's range; an integer for a
    float parameter is converted first. Accepted values replace the namespace's fields (the
    node reads those) and ``on_change({name: value})`` is called with the changed fields.
    ``validate({name: value})`` may return a reason to reject a combination.
    """

    def __init__(self, node: Any, specs: tuple[ParamSpec, ...], namespace: SimpleNamespace, *,
                 on_change: Callable[[dict[str, Any]], None] | None = None,
                 validate: Callable[[dict[str, Any]], str | None] | None = None) -> None:
        self.specs = {s.name: s for s in specs}
        self.namespace = namespace
        self.on_change = on_change
        self.validate = validate
        self._logger = node.get_logger()
        node.add_pre_set_parameters_callback(self._coerce)
        node.add_on_set_parameters_callback(self._check)
        node.add_post_set_parameters_callback(self._apply)

    def _coerce(self, parameters: list) -> list:
        from rclpy.parameter import Parameter
        out = []
        for param in parameters:
            s = self.specs.get(param.name)
            if s is not None and isinstance(s.default, float) \
                    and param.type_ == Parameter.Type.INTEGER:
                param = Parameter(param.name, Parameter.Type.DOUBLE, float(param.value))
            out.append(param)
        return out

    def _check(self, parameters: list) -> Any:
        from rcl_interfaces.msg import SetParametersResult
        changed = {}
        for param in parameters:
            s = self.specs.get(param.name)
            if s is None:
                continue      # not ours (use_sim_time ...): rclpy's own checks apply
            if s.read_only:
                reason = f'parameter {s.name} is read-only (set it at start-up)'
            else:
                value, reason = check_value(s, param.value)
                changed[s.name] = value
            if reason is not None:
                self._logger.warning(f'rejected parameter change: {reason}')
                return SetParametersResult(successful=False, reason=reason)
        if changed and self.validate is not None:
            reason = self.validate(changed)
            if reason:
                self._logger.warning(f'rejected parameter change: {reason}')
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    def _apply(self, parameters: list) -> None:
        changed = {}
        for param in parameters:
            s = self.specs.get(param.name)
            if s is None or s.read_only:
                continue
            value, _ = check_value(s, param.value)
            setattr(self.namespace, s.name.replace('.', '_'), value)
            changed[s.name.replace('.', '_')] = value
        if not changed:
            return
        self._logger.info('parameters changed: '
                          + ', '.join(f'{k}={v!r}' for k, v in changed.items()))
        if self.on_change is not None:
            self.on_change(changed)


def declare(node: Any, specs: tuple[ParamSpec, ...], *,
            on_change: Callable[[dict[str, Any]], None] | None = None,
            validate: Callable[[dict[str, Any]], str | None] | None = None) -> SimpleNamespace:
    """Declare ``specs`` on ``node``; return their values as a namespace (dots -> '_').

    Start-up values are checked (an integer is accepted for a float; a wrong type or an
    out-of-range value raises ``StartupError`` with one line naming the parameter). Run-time
    changes go through :class:`RuntimeParameters`: read-only parameters refuse them with a
    reason; the others update the namespace and call ``on_change`` with the changed fields.
    """
    values = {s.name.replace('.', '_'): _declare_one(node, s) for s in specs}
    namespace = SimpleNamespace(**values)
    RuntimeParameters(node, specs, namespace, on_change=on_change, validate=validate)
    return namespace


__all__ = ['ParamSpec', 'RuntimeParameters', 'check_value', 'declare']
