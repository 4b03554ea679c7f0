"""Upload, list, inspect, version and delete documents."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Response, UploadFile
from fastapi.responses import JSONResponse

from app.access import Access
from app.api.deps import AUTH_ERRORS, ReadAccess, SettingsDep, StoreDep, WriteAccess
from app.api.schemas import (
    DocumentDetail,
    DocumentList,
    DocumentOut,
    ErrorResponse,
    UploadedFile,
    UploadResponse,
    VersionOut,
)
from app.config import Settings
from app.errors import DocumentNotFound, DocumentTooLarge, InvalidRequest, RagError
from app.store import Document, Store, UploadOutcome
from app.uploads import accept_upload, email_attachments, parse_collection, parse_tags

router = APIRouter(prefix="/documents", tags=["documents"])

# What an upload may answer besides 202: a key's refusal, too large, not a document, empty.
UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    413: {"model": ErrorResponse},
    415: {"model": ErrorResponse},
    422: {"model": ErrorResponse},
}


@router.post(
    "",
    status_code=202,
    response_model=UploadResponse,
    responses=UPLOAD_ERRORS,
    summary="Upload one or more documents (multipart field `files`)",
)
def upload_documents(
    files: list[UploadFile],
    store: StoreDep,
    settings: SettingsDep,
    access: WriteAccess,
    tags: Annotated[str | None, Form(description="Comma-separated tags for every file, e.g. `hr,2026`")] = None,
    collection: Annotated[str | None, Form(description="The collection they go to (default: `default`)")] = None,
) -> UploadResponse | JSONResponse:
    """Each file is accepted or rejected on its own. 202 when at least one file is accepted (rejected
    ones carry `status: "rejected"`, `error` and `error_status`); when none is, the answer takes the
    status of the first rejection (413 too large, 415 unsupported type, 422 empty)."""
    if len(files) > settings.server.max_files_per_request:
        raise InvalidRequest(f"at most {settings.server.max_files_per_request} files per request")
    tag_list = parse_tags(tags)
    target = parse_collection(collection)
    access.check_collection(target)
    results = [result for upload in files for result in _upload_one(upload, store, settings, tag_list, target)]
    if all(result.status == "rejected" for result in results):
        first = results[0]
        body = {"detail": first.error, "documents": [r.model_dump() for r in results]}
        return JSONResponse(status_code=first.error_status or 422, content=body)
    return UploadResponse(documents=results)


def _upload_one(
    upload: UploadFile, store: Store, settings: Settings, tags: list[str], collection: str
) -> list[UploadedFile]:
    """The file's result; for an e-mail, then one for each file attached to it (each a document of its own)."""
    filename = upload.filename or "unnamed"
    try:
        content = _read(upload, settings)
        doc, outcome = accept_upload(store, settings, filename, content, tags, collection=collection)
    except RagError as exc:
        return [UploadedFile(filename=filename, status="rejected", error=str(exc), error_status=exc.status_code)]
    results = [_uploaded(doc, outcome)]
    if doc.kind == "eml":
        for name, attached in email_attachments(filename, content):
            try:
                part, part_outcome = accept_upload(store, settings, name, attached, tags, collection=collection)
            except RagError as exc:
                failed = UploadedFile(filename=name, status="rejected", error=str(exc), error_status=exc.status_code)
                results.append(failed.model_copy(update={"attachment_of": doc.id}))
                continue
            results.append(_uploaded(part, part_outcome).model_copy(update={"attachment_of": doc.id}))
    return results


def _read(upload: UploadFile, settings: Settings) -> bytes:
    max_bytes = settings.server.max_file_bytes
    content = upload.file.read(max_bytes + 1)
    if len(content) > max_bytes:
        raise DocumentTooLarge(f"{upload.filename or 'the file'} is larger than the {max_bytes}-byte limit")
    return content


def _uploaded(doc: Document, outcome: UploadOutcome) -> UploadedFile:
    return UploadedFile(
        id=doc.id,
        filename=doc.filename,
        collection=doc.collection,
        status=doc.status,
        duplicate=outcome == "duplicate",
        version=doc.version,
        new_version=outcome == "new_version",
    )


@router.put(
    "/{document_id}",
    status_code=202,
    response_model=UploadedFile,
    responses={**UPLOAD_ERRORS, 404: {"model": ErrorResponse}, 409: {"model": ErrorResponse}},
    summary="Upload a new version of a document (multipart field `file`)",
)
def put_document(
    document_id: str, file: UploadFile, store: StoreDep, settings: SettingsDep, access: WriteAccess
) -> UploadedFile:
    """The new version is parsed and indexed while the current one goes on answering; then it replaces it in
    one index generation. The same bytes as the latest version change nothing (`duplicate: true`); the bytes
    of another document are a 409."""
    _visible_document(store, access, document_id)
    doc, outcome = accept_upload(store, settings, file.filename or "unnamed", _read(file, settings), (), document_id)
    return _uploaded(doc, outcome)


@router.get(
    "",
    response_model=DocumentList,
    responses=AUTH_ERRORS,
    summary="List the documents (of the key's collections) with their status",
)
def list_documents(
    store: StoreDep,
    access: ReadAccess,
    collection: Annotated[list[str] | None, Query(description="Only these collections")] = None,
) -> DocumentList:
    return DocumentList(documents=[DocumentOut.of(doc) for doc in store.list_documents(access.visible(collection))])


@router.get(
    "/{document_id}",
    response_model=DocumentDetail,
    responses={**AUTH_ERRORS, 404: {"model": ErrorResponse}},
    summary="Status, chunk count, error, timestamps and version history of one document",
)
def get_document(document_id: str, store: StoreDep, access: ReadAccess) -> DocumentDetail:
    doc = _visible_document(store, access, document_id)
    versions = [VersionOut.model_validate(v, from_attributes=True) for v in store.document_versions(document_id)]
    return DocumentDetail(**DocumentOut.of(doc).model_dump(), versions=versions)


@router.delete(
    "/{document_id}",
    status_code=204,
    responses={**AUTH_ERRORS, 404: {"model": ErrorResponse}},
    summary="Delete a document; it is never cited again",
)
def delete_document(document_id: str, store: StoreDep, access: WriteAccess) -> Response:
    _visible_document(store, access, document_id)
    if not store.delete_document(document_id):
        raise DocumentNotFound(f"no document with id {document_id}")
    return Response(status_code=204)


def _visible_document(store: Store, access: Access, document_id: str) -> Document:
    """The document, if the key sees its collection; 404 otherwise (other collections' ids are not revealed)."""
    doc = store.get_document(document_id)
    if doc is None or not access.sees(doc.collection):
        raise DocumentNotFound(f"no document with id {document_id}")
    return doc
