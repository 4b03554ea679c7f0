"""Who may do what: API keys (`Authorization: Bearer <key>`) with a scope and the collections they see.

Scopes grow: `read` asks and lists, `write` also uploads, replaces and deletes documents, `admin` also reads
/metrics. Keys are required when `server.require_keys` is on (by default: when the API listens beyond this
machine). When they are not, a request may do everything, unless it sends a known key: then it is held to it."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from app.errors import Forbidden, InvalidRequest, Unauthorized
from app.store import ALL_COLLECTIONS, ApiKey, Store, checked_label

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
KEY_PREFIX = "dq_"


@dataclass(frozen=True)
class Access:
    scope: Scope
    collections: frozenset[str] | None  # None: every collection
    key_name: str | None = None  # None: no key (keys not required)

    def require(self, scope: Scope) -> None:
        if SCOPES.index(self.scope) < SCOPES.index(scope):
            raise Forbidden(f"the key {self.key_name!r} has scope {self.scope}; this needs {scope}")

    def sees(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections

    def check_collection(self, collection: str) -> None:
        if not self.sees(collection):
            raise Forbidden(f"the key {self.key_name!r} has no access to collection {collection!r}")

    def visible(self, requested: Sequence[str] | None) -> list[str] | None:
        """The collections a request may search: those it asks for (all when None) that the key sees."""
        if requested is None:
            return None if self.collections is None else sorted(self.collections)
        return [c for c in requested if self.sees(c)]


UNRESTRICTED = Access("admin", None)


def authenticate(store: Store, authorization: str | None, required: bool) -> Access:
    """The access a request's Authorization header gives; Unauthorized without a valid key when one is needed."""
    if not authorization:
        if required:
            raise Unauthorized("this API needs a key: send `Authorization: Bearer <key>` (python -m app keys create)")
        return UNRESTRICTED
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        if required:
            raise Unauthorized("the Authorization header must be `Bearer <key>`")
        return UNRESTRICTED
    found = store.key_by_hash(key_sha256(key.strip()))
    if found is None:
        if required:
            raise Unauthorized("this API key is not known, or was revoked")
        return UNRESTRICTED  # OpenAI clients always send one: any placeholder key works when keys are off
    collections = None if ALL_COLLECTIONS in found.collections else frozenset(found.collections)
    return Access(found.scope, collections, found.name)  # type: ignore[arg-type]  # stored from SCOPES


def create_key(store: Store, name: str, scope: str, collections: Sequence[str]) -> str:
    """A new key (returned once, stored only as its hash)."""
    if scope not in SCOPES:
        raise InvalidRequest(f"scope must be one of {', '.join(SCOPES)}")
    checked_label("key name", name)
    for collection in collections:
        if collection != ALL_COLLECTIONS:
            checked_label("collection", collection)
    if not collections:
        raise InvalidRequest("name at least one collection (or * for every one)")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    store.add_key(ApiKey(name, scope, tuple(collections), time.time()), key_sha256(key))
    return key


def key_sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()
