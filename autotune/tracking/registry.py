"""The MLflow Model Registry: register a training run's policy; resolve ``models:/NAME@ALIAS``.

A registered version's source is the training run's ``policy/`` artifact (``runs:/ID/policy``),
so what a node downloads is the same pickle-free ``.npz`` + JSON folder as for ``--model
RUN_ID``, checked against the node's schema and knob table by :func:`autotune.policy.load`.
Promoting another version is an alias change (``MlflowClient.set_registered_model_alias``, or
the MLflow UI); the next ``autotune tune --model models:/autotune-policy@champion`` picks it up.

Example::

    version = register(run_id, "http://tracker:5000")          # autotune-policy, @champion
    folder, version = resolve("models:/autotune-policy@champion", "http://tracker:5000")
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from autotune.errors import UserError
from autotune.tracking import store
from autotune.tracking.schema import (
    DEFAULT_ALIAS,
    POLICY_ARTIFACT,
    REGISTERED_MODEL,
    TAG_KNOB_TABLE_VERSION,
    TAG_MODEL_ALIAS,
    TAG_MODEL_NAME,
    TAG_MODEL_RUN_ID,
    TAG_MODEL_URI,
    TAG_MODEL_VERSION,
    TAG_SCHEMA_VERSION,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

PREFIX = "models:/"
# models:/NAME@ALIAS or models:/NAME/VERSION (MLflow's own forms; NAME has no '/' or '@').
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>[0-9]+))/?$")
# MLflow's rule for aliases, less the names it reserves (`latest`, `v<number>`).
_ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_RESERVED_ALIAS = re.compile(r"^(latest|v[0-9]+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Version:
    """One registered version of a policy.

    Attributes:
        name: the registered model's name.
        version: its version number (as MLflow gives it, a string).
        run_id: the training run it came from.
        alias: the alias it was found or registered under, if any.
    """

    name: str
    version: str
    run_id: str
    alias: str | None = None

    @property
    def uri(self) -> str:
        """``models:/NAME/VERSION``: this version, whatever the aliases do later."""
        return f"{PREFIX}{self.name}/{self.version}"

    def tags(self) -> dict[str, str]:
        """The tags a run deploying this version carries."""
        out = {
            TAG_MODEL_NAME: self.name,
            TAG_MODEL_VERSION: self.version,
            TAG_MODEL_URI: self.uri,
            TAG_MODEL_RUN_ID: self.run_id,
        }
        if self.alias:
            out[TAG_MODEL_ALIAS] = self.alias
        return out


def is_models_uri(given: str) -> bool:
    """True for anything meant as a registry URI (``models:/...``), well-formed or not."""
    return given.strip().startswith(PREFIX)


def check_alias(alias: str) -> None:
    """Refuse an alias MLflow would refuse, in one line."""
    if not _ALIAS.match(alias) or _RESERVED_ALIAS.match(alias):
        raise UserError(
            f"alias {alias!r} is not allowed: letters, digits, '_' and '-', and not 'latest' "
            "or 'v<number>' (MLflow reserves those)"
        )


def check_name(name: str) -> None:
    """Refuse a registered-model name that cannot appear in a ``models:/`` URI."""
    if not name or "/" in name or "@" in name or name != name.strip():
        raise UserError(f"registered model name {name!r} is not allowed (no '/', '@' or spaces)")


def _mlflow_code(exc: BaseException) -> str | None:
    from mlflow.exceptions import MlflowException

    return exc.error_code if isinstance(exc, MlflowException) else None


def register(
    run_id: str,
    tracking_uri: str,
    *,
    name: str = REGISTERED_MODEL,
    alias: str | None = DEFAULT_ALIAS,
) -> Version:
    """Register the ``policy/`` artifact of training run ``run_id`` as a new version of ``name``.

    The registered model is created on first use. With ``alias`` the new version takes it (an
    alias names one version at a time, so this is a promotion).

    Raises:
        UserError: no such run, a run without a policy, a store that does not answer, or a name
            or alias MLflow refuses.
    """
    check_name(name)
    if alias is not None:
        check_alias(alias)
    c = store.client(tracking_uri, must_exist=True)
    tags = _policy_tags(c, run_id, tracking_uri)
    try:
        try:
            c.create_registered_model(name)
        except Exception as e:
            if _mlflow_code(e) != "RESOURCE_ALREADY_EXISTS":
                raise
        mv = c.create_model_version(
            name, f"runs:/{run_id}/{POLICY_ARTIFACT}", run_id=run_id, tags=tags
        )
        if alias is not None:
            c.set_registered_model_alias(name, alias, mv.version)
    except UserError:
        raise
    except Exception as e:
        raise UserError(f"cannot register run {run_id} as {name!r}: {_first_line(e)}") from e
    return Version(name=name, version=str(mv.version), run_id=run_id, alias=alias)


def _policy_tags(c: MlflowClient, run_id: str, tracking_uri: str) -> dict[str, str]:
    """The schema and knob-table versions of a run that has a policy (else UserError)."""
    try:
        run = c.get_run(run_id)
        listed = [f.path for f in c.list_artifacts(run_id)]
    except Exception as e:
        if _mlflow_code(e) == "RESOURCE_DOES_NOT_EXIST":
            raise UserError(f"no run {run_id} at {tracking_uri}") from e
        raise UserError(f"cannot read run {run_id} at {tracking_uri}: {_first_line(e)}") from e
    if POLICY_ARTIFACT not in listed:
        raise UserError(f"run {run_id} has no {POLICY_ARTIFACT}/ artifact: nothing to register")
    keep = (TAG_SCHEMA_VERSION, TAG_KNOB_TABLE_VERSION)
    return {k: v for k, v in run.data.tags.items() if k in keep}


def parse(given: str) -> tuple[str, str | None, str | None]:
    """``(name, alias, version)`` of ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""
    m = _URI.match(given.strip())
    if not m:
        raise UserError(
            f"model {given!r}: a registry URI is models:/NAME@ALIAS or models:/NAME/VERSION"
        )
    return m.group("name"), m.group("alias"), m.group("version")


def lookup(given: str, tracking_uri: str) -> Version:
    """The version ``models:/NAME@ALIAS`` (or ``/VERSION``) names now.

    Raises:
        UserError: a malformed URI, no such registered model, alias or version, or a store that
            does not answer.
    """
    name, alias, version = parse(given)
    c = store.client(tracking_uri, must_exist=True)
    try:
        rm = c.get_registered_model(name)
    except Exception as e:
        if _mlflow_code(e) == "RESOURCE_DOES_NOT_EXIST":
            raise UserError(f"no registered model {name!r} at {tracking_uri}") from e
        raise UserError(f"cannot read the registry at {tracking_uri}: {_first_line(e)}") from e
    if alias is not None:
        if alias not in rm.aliases:
            known = ", ".join(f"@{a} (version {v})" for a, v in sorted(rm.aliases.items()))
            raise UserError(
                f"registered model {name!r} has no alias {alias!r}"
                + (f"; it has {known}" if known else "; it has no aliases")
            )
        version = str(rm.aliases[alias])
    if version is None:  # the URI pattern gives one or the other; mypy cannot see it
        raise UserError(f"model {given!r} names neither an alias nor a version")
    try:
        mv = c.get_model_version(name, version)
    except Exception as e:
        if _mlflow_code(e) == "RESOURCE_DOES_NOT_EXIST":
            raise UserError(f"registered model {name!r} has no version {version}") from e
        raise UserError(f"cannot read {name!r} version {version}: {_first_line(e)}") from e
    if not mv.run_id:
        raise UserError(f"{name!r} version {version} names no training run (not an autotune one?)")
    return Version(name=name, version=str(mv.version), run_id=mv.run_id, alias=alias)


def resolve(given: str, tracking_uri: str, runs_dir: Path = Path("runs")) -> tuple[Path, Version]:
    """The local policy folder of ``models:/NAME@ALIAS`` (downloaded once per version).

    Raises:
        UserError: as :func:`lookup`, or a version whose source is not an autotune policy.
    """
    from autotune.tracking.models import resolve_model

    version = lookup(given, tracking_uri)
    c = store.client(tracking_uri, must_exist=True)
    source = c.get_model_version(version.name, version.version).source or ""
    if not source.startswith(f"runs:/{version.run_id}/"):
        raise UserError(
            f"{version.uri} comes from {source}, not from a training run's {POLICY_ARTIFACT}/ "
            "artifact; register it with `autotune train --register` or `autotune sweep`"
        )
    return resolve_model(source, tracking_uri, runs_dir), version


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return str(text).splitlines()[0][:200] if text else type(exc).__name__
