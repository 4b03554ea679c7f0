"""Every error a user can cause, each with the HTTP status the API answers it with."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class RagError(Exception):
    """Base class: `status_code` is what the API answers, the message is for a person."""

    status_code = 400


class Unauthorized(RagError):
    """No API key, or one that is unknown or revoked."""

    status_code = 401


class Forbidden(RagError):
    """The key's scope or collections do not allow the request."""

    status_code = 403


class DocumentNotFound(RagError):
    status_code = 404


class Conflict(RagError):
    """The request contradicts what is stored (e.g. a new version whose bytes are another document)."""

    status_code = 409


class AdapterNotFound(RagError):
    """A request named an adapter the generator does not hold (GET /adapters lists them)."""

    status_code = 404


class DocumentTooLarge(RagError):
    status_code = 413


class UnsupportedDocument(RagError):
    status_code = 415


class EmptyDocument(RagError):
    status_code = 422


class InvalidRequest(RagError):
    status_code = 422


class ParseError(RagError):
    """The worker could not read a document that looked valid at upload (corrupt, encrypted...)."""

    status_code = 422


class ModelUnavailable(RagError):
    """A configured model cannot be loaded (wrong path, packaged model missing or altered)."""

    status_code = 503


class GeneratorUnavailable(RagError):
    """The generator server (generator.backend: openai) cannot be reached or failed to answer."""

    status_code = 503


class GeneratorBusy(RagError):
    """Every generation slot stayed taken for generator.max_wait_seconds."""

    status_code = 503


def describe_validation_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    """pydantic's field-by-field errors as one sentence a person can act on: `body.question: Field required`."""
    return "; ".join(f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in errors)
