"""Routes: the deliveries each event type makes, and the mapping each delivery runs.

Built once from config by the composition root (``app.build_routes``). Outbox rows record the mapping's
name and content hash at acceptance; ``Mapper`` runs that exact version at delivery, compiling an older
version from the store when the spec has changed since, so a row is always delivered as it was planned
unless a replay re-pins it to the current version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lienthong.bus.conditions import EventTest
from lienthong.errors import ConfigError, MappingError, PermanentError, RetryableError, StoreError
from lienthong.mappings import CompiledMapping, SpecLoader
from lienthong.model import MappingVersion, Message
from lienthong.store import Store, units


@dataclass(frozen=True)
class DeliveryRoute:
    """One delivery of an event type: to ``destination``'s ``operation``, through ``mapping``."""

    destination: str
    operation: str
    mapping: CompiledMapping
    params: Mapping[str, Any]
    units: frozenset[str] | None = None  # only events from these units
    except_units: frozenset[str] = frozenset()
    when: EventTest | None = None  # only events this holds for (``bus.conditions``)

    def serves(self, unit_code: str) -> bool:
        """Whether events of ``unit_code`` take this delivery (a provider per unit, for example)."""
        if self.units is not None:
            return unit_code in self.units
        return unit_code not in self.except_units

    def takes(self, event: Mapping[str, Any]) -> bool:
        """Whether ``event`` (its envelope's keys: event_id, type, occurred_at, unit_code, dossier) takes
        this delivery: its unit is served and the route's condition holds."""
        return self.serves(event["unit_code"]) and (self.when is None or self.when(event))


class Routes:
    def __init__(self, routes: Mapping[str, Sequence[DeliveryRoute]]) -> None:
        self._by_type = {event_type: tuple(rs) for event_type, rs in routes.items()}
        self._reading = frozenset(t for t, rs in routes.items() if any(r.when is not None for r in rs))
        self._by_key = {(t, r.destination, r.operation): r for t, rs in routes.items() for r in rs}

    def for_type(self, event_type: str) -> tuple[DeliveryRoute, ...]:
        return self._by_type.get(event_type, ())

    def read_content(self, event_type: str) -> bool:
        """Whether a route of ``event_type`` has a condition on the event's content (decided once)."""
        return event_type in self._reading

    def route(self, event_type: str, destination: str, operation: str) -> DeliveryRoute | None:
        return self._by_key.get((event_type, destination, operation))

    def mappings(self) -> list[CompiledMapping]:
        """The current version of every mapping the routes use, once each."""
        unique = {r.mapping.hash: r.mapping for r in self._by_key.values()}
        return list(unique.values())

    def current(self, name: str) -> CompiledMapping | None:
        return next((m for m in self.mappings() if m.name == name), None)

    def versions(self) -> list[MappingVersion]:
        return [MappingVersion(m.hash, m.name, m.document) for m in self.mappings()]


class Mapper:
    """Turns a claimed delivery into the body its adapter sends, with the mapping version its row records."""

    def __init__(self, routes: Routes, store: Store, loader: SpecLoader) -> None:
        self._routes = routes
        self._store = store
        self._loader = loader
        self._versions = {m.hash: m for m in routes.mappings()}

    async def body(self, message: Message) -> dict[str, Any]:
        """Raises MappingError (a permanent error) when the record cannot be mapped."""
        event = message.event
        route = self._routes.route(event.type, message.destination, message.operation)
        mapping = self._versions.get(message.mapping_hash) or await self._version(message, route)
        record = {
            "event_id": event.event_id,
            "type": event.type,
            "occurred_at": event.occurred_at,
            "unit_code": event.unit_code,
            "dossier": event.dossier,
        }
        try:
            return mapping(record, params=route.params if route else {}, record_id=event.event_id)
        except MappingError as exc:
            exc.destination, exc.operation = message.destination, message.operation
            raise

    async def _version(self, message: Message, route: DeliveryRoute | None) -> CompiledMapping:
        where: dict[str, Any] = {"destination": message.destination, "operation": message.operation}
        if not message.mapping_hash:
            # A row stored before mappings were recorded: the route's current mapping is all there is.
            if route is None:
                raise PermanentError(f"no route delivers {message.event.type} here any more", **where)
            return route.mapping
        try:
            version = await self._store.run(units.mapping_version, message.mapping_hash)
        except StoreError as exc:
            raise RetryableError(f"cannot read mapping version from the store: {exc}", **where) from exc
        if version is None:
            short = message.mapping_hash[:12]
            raise PermanentError(f"mapping {message.mapping} version {short} is not in the store", **where)
        try:
            compiled = self._loader.load_document(version.document, name=version.name)
        except ConfigError as exc:
            raise PermanentError(f"stored mapping {version.name} no longer compiles: {exc}", **where) from exc
        self._versions[compiled.hash] = compiled
        return compiled
