"""The template catalogue: built-ins (package data) and client-registered templates (database)."""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from app.db.tables import Template
from app.judging import repository as judging_repo
from app.judging.domain import TemplateSpec
from app.judging.schemas import TemplateList, TemplateOut
from app.judging.templates import builtin_templates, template_placeholders

_TEMPLATE_REF = re.compile(r"^(?P<name>[^@]+)(?:@(?P<version>[0-9]+))?$")


def spec_from_row(row: Template) -> TemplateSpec:
    return TemplateSpec(
        name=row.name,
        mode=row.mode,  # type: ignore[arg-type]
        system=row.system,
        user=row.user,
        multi_turn=row.multi_turn,
        reference=row.reference,
        cot=row.cot,
        version=row.version,
        description=row.description,
        response_prefix=row.response_prefix,
        parser=row.parser,  # type: ignore[arg-type]
    )


def resolve_template(session: Session, ref: str, tenant: str) -> TemplateSpec | None:
    """A template by ``name`` (latest version) or ``name@version``; built-ins first."""
    match = _TEMPLATE_REF.match(ref)
    if match is None:
        return None
    name, version = match["name"], match["version"]
    builtin = builtin_templates().get(name)
    if builtin is not None:
        return builtin if version is None or int(version) == builtin.version else None
    row = judging_repo.latest_template(session, name, int(version) if version else None, tenant)
    return spec_from_row(row) if row is not None else None


def _out(spec: TemplateSpec, builtin: bool) -> TemplateOut:
    return TemplateOut(
        name=spec.name,
        version=spec.version,
        mode=spec.mode,
        multi_turn=spec.multi_turn,
        reference=spec.reference,
        cot=spec.cot,
        builtin=builtin,
        system=spec.system,
        user=spec.user,
        response_prefix=spec.response_prefix,
        parser=spec.parser,
        placeholders=sorted(template_placeholders(spec)),
        description=spec.description,
    )


def template_out(row: Template) -> TemplateOut:
    return _out(spec_from_row(row), builtin=False)


def list_all_templates(session: Session, tenant: str) -> TemplateList:
    builtins = [_out(spec, builtin=True) for spec in builtin_templates().values()]
    custom = [template_out(row) for row in judging_repo.list_templates(session, tenant)]
    return TemplateList(templates=builtins + custom)
