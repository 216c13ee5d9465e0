"""The API the CLI (and scripts) use: tenants on the cluster of the current kubeconfig context.

Every failure becomes a `ClientError` with one line a person can act on.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import ssl

import yaml

from . import kube, rest
from .lazy import OnFirstUse
from .models.names import API_VERSION, DEFAULT_ANCHOR, GROUP

# imported on first use: `yunshang --help` and `tenant list` need neither the Kubernetes client
# nor the models (bench/cli_latency.py)
config = OnFirstUse("kubernetes.config")
pydantic = OnFirstUse("pydantic")
tenancy = OnFirstUse("yunshang.tenancy")
tm = OnFirstUse("yunshang.models.tenant")
am = OnFirstUse("yunshang.models.agreement")
audm = OnFirstUse("yunshang.models.audit")


class ClientError(Exception):
    """One line: what went wrong and how to fix it."""


def validation_message(e: pydantic.ValidationError, prefix: str = "") -> str:
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    where = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "input"
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return f"invalid {where}: {msg}{more}"


def api_message(e, what: str, listing: str = "yunshang tenant list") -> str:
    try:
        body = json.loads(e.body or "{}")
        msg = body.get("message") or e.reason
    except (ValueError, TypeError):
        msg = e.body or e.reason
    if e.status == 404:
        return f"{what} not found (see `{listing}`)"
    if e.status == 403:
        return f"not allowed: {msg}"
    if e.status == 409:
        return f"{what} already exists: {msg}"
    if e.status == 422:
        return f"invalid: {msg}"
    return f"{what}: API server said {e.status}: {msg}"


def read_manifest(path: Path, kind: str, flag: str = "--file") -> dict[str, Any]:
    """One manifest of ``kind`` from a YAML file (``flag``: how the user named it), or one line that
    says what the file is instead: missing, not UTF-8, not YAML, empty, several, a list, another kind."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ClientError(f"{flag} {path}: no such file") from None
    except IsADirectoryError:
        raise ClientError(f"{flag} {path}: a directory; give one {kind} manifest file") from None
    except OSError as e:
        raise ClientError(f"{flag} {path}: cannot be read ({(e.strerror or 'I/O error').lower()})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ClientError(f"{path} is not UTF-8 (byte 0x{raw[e.start]:02x} at {e.start}); save it as UTF-8") from None
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ClientError(f"{path} is not valid YAML{at}: {getattr(e, 'problem', None) or 'cannot be parsed'}") from None
    wanted = f"one {kind} manifest (apiVersion, kind: {kind}, metadata.name, spec)"
    if not docs:
        raise ClientError(f"{path} is empty: it should hold {wanted}")
    if len(docs) > 1:
        raise ClientError(f"{path} holds {len(docs)} YAML documents: it should hold {wanted}, one per file")
    doc = docs[0]
    if isinstance(doc, list):
        raise ClientError(f"{path} holds a list of {len(doc)}: it should hold {wanted}, one per file")
    if not isinstance(doc, dict):
        raise ClientError(f"{path} holds a single value, not a mapping: it should hold {wanted}")
    if doc.get("kind") != kind:
        got = f"kind {doc['kind']!r}" if doc.get("kind") else "no kind"
        raise ClientError(f"{path}: {got}; it should hold {wanted}")
    if doc.get("apiVersion", API_VERSION) != API_VERSION:
        raise ClientError(f"{path}: apiVersion {doc['apiVersion']!r}; a {kind} is {API_VERSION}")
    if not isinstance(doc.get("metadata"), dict) or not doc["metadata"].get("name"):
        raise ClientError(f"{path}: no metadata.name: the {kind}'s name goes there")
    if not isinstance(doc.get("spec"), dict):
        raise ClientError(f"{path}: spec is missing or not a mapping")
    return doc


def load_request_file(path: Path) -> tuple[str, tm.TenantRequest]:
    """A catalog file (a Tenant manifest without approval) -> (name, validated request)."""
    doc = read_manifest(path, "Tenant", "catalog file")
    name = doc["metadata"]["name"]
    try:
        req = tm.TenantRequest.model_validate(doc["spec"])
        tm.check_tenant_name(name, req)
    except pydantic.ValidationError as e:
        raise ClientError(f"{path}: " + validation_message(e, "spec.")) from None
    except ValueError as e:
        raise ClientError(f"{path}: {e}") from None
    return name, req


def manifest(name: str, spec: tm.TenantRequest) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Tenant",
        "metadata": {"name": name},
        "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True),
    }


def approved(t: dict[str, Any]) -> bool:
    """Approved at least once (every reviewer role signed a round), as the operator reports it."""
    st, spec = t.get("status") or {}, t.get("spec") or {}
    legacy = (spec.get("approval") or {}).get("decision") == "Approved"
    if legacy or st.get("phase") in ("Approved", "Provisioning", "Ready", "Suspended"):
        return True
    # signed a moment ago, before the operator said so: every role the status waits for has approved
    waiting = [r.get("role") for r in (st.get("signoff") or {}).get("roles") or []]
    cur = int(spec.get("requestRound") or 1)
    signed = {d.get("role") for d in spec.get("signoffs") or []
              if int(d.get("round") or 1) == cur and d.get("decision") == "Approved"}
    return bool(waiting) and set(waiting) <= signed


class Tenants:
    def __init__(self, kubeconfig: str | None = None, context: str | None = None, named: str | None = None):
        """``named``: how the user gave the kubeconfig (e.g. --kubeconfig, $KUBECONFIG), for messages."""
        self._kubeconfig, self._context = kubeconfig, context
        self._api = None
        self._identity: tuple[str, list[str]] | None = None
        try:  # reads go through the light path when the kubeconfig allows it (rest.py says why)
            self.rest: rest.Endpoint | None = rest.Endpoint(kubeconfig, context)
        except rest.CredentialFailed as e:
            raise ClientError(str(e)) from None
        except (rest.Unsupported, OSError, ValueError, ssl.SSLError, AttributeError, TypeError, KeyError):
            self.rest = None
            self._usable_kubeconfig(named)  # a file that is no kubeconfig at all: said so, in one line
            self.api  # noqa: B018  (a kubeconfig the client cannot use either fails here, in one line)

    def _usable_kubeconfig(self, named: str | None) -> None:
        from .target import Target

        path = Target(self._kubeconfig).path
        problem = self.kubeconfig_problem(path, self._context)
        if not problem:
            return
        if problem.startswith("no context "):  # "no context 'x' (its contexts: a, b)"
            raise ClientError(f"--context {self._context!r}: not in {path}; {problem.partition(' (')[2].rstrip(')')}")
        if named:
            where = f"{named} {path}"
        elif self._kubeconfig:
            where = f"cannot use {path}"
        else:
            where = f"kubeconfig {path} (the default: no --kubeconfig or $KUBECONFIG)"
        hint = {"no such file": "; start the local platform with `yunshang dev up` (it writes one) or pass "
                                "--kubeconfig",
                "not a kubeconfig": "; a kubeconfig is what `yunshang dev up` writes or `kubectl config view --raw` "
                                    "prints"}.get(problem.partition(" (")[0], "")
        raise ClientError(f"{where}: {problem}{hint}")

    @staticmethod
    def kubeconfig_problem(path: Path, context: str | None = None) -> str | None:
        """Why ``path`` is not a kubeconfig (with ``context``), in a few words; None when it looks like one."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return "no such file"
        except IsADirectoryError:
            return "a directory, not a kubeconfig file"
        except OSError as e:
            return f"cannot be read ({(e.strerror or 'I/O error').lower()})"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            return f"not a kubeconfig (not UTF-8 text: byte 0x{raw[e.start]:02x} at {e.start})"
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            doc = None
        if not isinstance(doc, dict) or not doc.get("clusters") or not doc.get("contexts"):
            pem = ": it holds a PEM certificate or key, which a kubeconfig refers to" if "-----BEGIN " in text else ""
            return f"not a kubeconfig (no clusters/contexts){pem}"
        names = [c.get("name") for c in doc["contexts"] if isinstance(c, dict)]
        known = f"its contexts: {', '.join(map(str, names))}"
        if context and context not in names:
            return f"no context {context!r} ({known})"
        current = doc.get("current-context")
        if not context and not current:
            return f"no current-context: pass --context ({known})"
        if not context and current not in names:
            return f"its current-context {current!r} is not one of its contexts ({known})"
        return None

    @property
    def api(self):
        if self._api is None:
            try:
                self._api = config.new_client_from_config(config_file=self._kubeconfig, context=self._context)
            except (config.ConfigException, OSError) as e:
                where = self._kubeconfig or "your kubeconfig"
                raise ClientError(
                    f"cannot use {where}: {e}; start the local platform with `yunshang dev up` or pass --kubeconfig"
                ) from None
        return self._api

    @property
    def transport(self):
        """What yunshang.kube's calls go over: the light path when the kubeconfig allows, else the client."""
        return self.rest if self.rest is not None else self.api

    # -------------------------------------------------------------- reads
    def read(self, what: str, kind: str, name: str | None = None, namespace: str | None = None, *,
             query: list[tuple[str, str]] | None = None, listing: str = "yunshang tenant list") -> Any:
        """GET one object (``name``) or the collection of ``kind``, a one-line ClientError on failure."""
        url = kube.path(kind, name, namespace) if name else kube.collection(kind, namespace)
        return self.call(what, kube.request, self.transport, "GET", url, query=query, listing=listing)

    def get(self, name: str) -> dict[str, Any]:
        return self.read(f"tenant {name!r}", "Tenant", name)

    def list(self) -> list[dict[str, Any]]:
        """Every tenant; for a department (which may not list them: need-to-know) its own."""
        from .signoff import REVIEWER_GROUP_PREFIX

        if self.department_only((REVIEWER_GROUP_PREFIX,)):
            return [self.get(t) for t in self.departments()]
        return self._all()

    def _all(self) -> list[dict[str, Any]]:
        return self.read("tenants", "Tenant")["items"]

    def departments(self) -> list[str]:
        """The tenants the caller belongs to (groups yunshang:dept:<tenant>)."""
        _, groups = self.identity()
        return sorted(g[len(tm.DEPT_GROUP_PREFIX):] for g in groups if g.startswith(tm.DEPT_GROUP_PREFIX))

    def view(self, tenant: str) -> dict[str, Any]:
        """A department's view (need-to-know, kept by the operator): its agreements and audit records."""
        from .views import VIEWS_NAMESPACE, view_name

        cm = self.read(f"the view of {tenant}", "ConfigMap", view_name(tenant), VIEWS_NAMESPACE)
        data = cm.get("data") or {}
        return {"agreements": json.loads(data.get("agreements.json") or "[]"),
                "audit": json.loads(data.get("audit.json") or "[]")}

    def call(self, what: str, fn, *args, listing: str = "yunshang tenant list", **kwargs):
        """One API call: an API error or an unreachable server becomes a one-line ClientError."""
        try:
            return fn(*args, **kwargs)
        except ClientError:
            raise
        except Exception as e:
            raise self._failed(e, what, listing) from None

    def _failed(self, e: Exception, what: str, listing: str = "yunshang tenant list") -> ClientError:
        """The API server's answer (either transport) in one line, or that it did not answer."""
        if kube.status_of(e) is not None:
            return ClientError(api_message(e, what, listing))
        return self._unreachable(e)

    def _unreachable(self, e: Exception) -> ClientError:
        """The API server did not answer (at the address of the transport the call went over)."""
        host = self.rest.host if self.rest is not None else self.api.configuration.host
        return ClientError(f"cannot reach the API server at {host} ({_short(e)}); is it running (`yunshang dev status`)?")

    def whoami(self) -> str:
        return self.identity()[0]

    def events(self, name: str) -> list[dict[str, Any]]:
        try:
            return kube.request(self.transport, "GET", kube.collection("Event"), query=[
                ("fieldSelector", f"involvedObject.name={name},involvedObject.kind=Tenant")]).get("items") or []
        except Exception as e:  # noqa: BLE001
            if kube.status_of(e) is None:
                raise self._unreachable(e) from None
            return []

    def quotas(self, name: str, spec: dict[str, Any]) -> list[dict[str, Any]]:
        """Each namespace's quota, hard and used, read live (what the caller may read; the
        operator keeps usage out of the tenant's status so that usage changes cost no writes)."""
        out = []
        for suffix in spec.get("namespaces") or []:
            ns = f"{name}-{suffix}"
            try:
                q = kube.get(self.transport, "ResourceQuota", tenancy.QUOTA_NAME, ns)
            except Exception as e:  # noqa: BLE001  (not the caller's to read)
                if kube.status_of(e) is None:
                    raise self._unreachable(e) from None
                continue
            if q is None:
                continue
            st = q.get("status") or {}
            out.append({"name": ns, "hard": dict(st.get("hard") or {}), "used": dict(st.get("used") or {})})
        return out

    def usage(self) -> dict[str, tuple[dict, dict]]:
        """tenant -> (used, hard) of "cpu", "memory" and "storage" requests, summed over its namespaces' quotas."""
        from .models.quantity import to_decimal

        items = self.call("resource quotas", kube.list_all, self.transport, "ResourceQuota",
                          label_selector=tenancy.LABEL_TENANT)
        out: dict[str, tuple[dict, dict]] = {}
        for q in items:
            tenant = (q["metadata"].get("labels") or {}).get(tenancy.LABEL_TENANT)
            used, hard = out.setdefault(tenant, ({}, {}))
            st = q.get("status") or {}
            for key, res in (("requests.cpu", "cpu"), ("requests.memory", "memory"), ("requests.storage", "storage")):
                for side, src in ((used, st.get("used") or {}), (hard, st.get("hard") or {})):
                    if key in src:
                        side[res] = side.get(res, 0) + to_decimal(src[key])
        return out

    # -------------------------------------------------------------- writes
    def _patch(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return self.call(f"tenant {name!r}", kube.patch, self.transport, "Tenant", name, {"spec": spec})

    def request(self, name: str, spec: tm.TenantRequest) -> dict[str, Any]:
        try:
            tm.check_tenant_name(name, spec)
        except ValueError as e:
            raise ClientError(str(e)) from None
        if problems := self.quota_problems(spec):
            raise self.refused(problems, f"tenant {name!r}")
        if spec.parent:
            self._check_carve(name, tm.TenantSpec.model_validate(spec.model_dump()), approved_only=False)
        return self.call(f"tenant {name!r}", kube.create, self.transport, "Tenant", manifest(name, spec))

    def _spec(self, name: str) -> tm.TenantSpec:
        body = self.get(name)
        return tm.TenantSpec.model_validate(body["spec"])

    def _check_carve(self, name: str, spec: tm.TenantSpec, approved_only: bool = True) -> None:
        """Refuse (before the operator would) a child whose parent does not exist or is not of the
        level above it (city under a province, county under a city, township under a county,
        village under a township), or whose quota does not fit its
        parent's; a parent not approved yet is refused only once the child is decided (approved_only)."""
        from .signoff import REVIEWER_GROUP_PREFIX

        if not spec.parent:
            return
        if self.department_only((REVIEWER_GROUP_PREFIX,)):
            return  # a department sees no other tenant (need-to-know; a refused read counts as probing): the operator
            # checks
        try:
            items = {t["metadata"]["name"]: t for t in self._all()}
        except ClientError as e:
            if str(e).startswith("not allowed"):
                return  # a department sees no other tenant (need-to-know): the operator checks instead
            raise
        parent_body = items.get(spec.parent)
        if parent_body is None:
            raise self.refused([self.problem(("parent",), spec.parent, "no such tenant (see `yunshang tenant list`)")],
                               f"tenant {name!r}")
        parent = tm.TenantSpec.model_validate(parent_body["spec"])
        wanted = tm.PARENT_LEVEL.get(spec.level)
        if wanted is not None and parent.level != wanted:
            child = tm.CHILD_LEVEL.get(parent.level)
            below = (f"under a {parent.level.value}: a {child.value} tenant" if child
                     else f"nothing sits under a {parent.level.value}")
            raise self.refused([self.problem(("parent",), spec.parent, (
                f"is a {parent.level.value} tenant; a {spec.level.value} tenant's parent is a {wanted.value} tenant "
                f"({below})"))], f"tenant {name!r}")
        siblings = {}
        for n, t in items.items():
            s = t["spec"]
            if n != name and s.get("parent") == spec.parent and approved(t):
                siblings[n] = tm.TenantSpec.model_validate(s)
        problem = tenancy.hierarchy_problem(name, spec, spec.parent, parent, siblings,
                                            parent_approved=bool(parent_body) and approved(parent_body))
        if problem and (approved_only or "quota over parent" in problem or "does not exist" in problem):
            raise ClientError(f"tenant {name!r}: {problem}")

    # A quota of zero where zero makes no sense.  The operator splits a tenant's quota evenly over its
    # namespaces, rounded down, so each namespace must get at least one unit of these:
    # - cpu, memory, pods: a tenant that can start no pod is of no use, and stopping one is
    #   `yunshang tenant suspend` (pods: 0 while suspended, data kept), the bureau's act, not a request;
    # - configmaps: Kubernetes puts the ConfigMap kube-root-ca.crt in every namespace (pods read the
    #   API server's CA from it), and a quota of 0 refuses it.
    # storage, persistentvolumeclaims, services and secrets may be 0: a stateless tenant, one that
    # serves nothing as a Service or keeps no Secret says so with 0.  (Negative amounts the model
    # refuses already.)
    _NO_POD = "a tenant that can start no pod is of no use (stopping one is `yunshang tenant suspend`)"
    NOT_ZERO = {"cpu": _NO_POD, "memory": _NO_POD, "pods": _NO_POD,
                "configmaps": "every namespace holds the ConfigMap kube-root-ca.crt that Kubernetes puts there"}

    @classmethod
    def quota_problems(cls, spec: "tm.TenantRequest | tm.Quota", namespaces: int | None = None) -> list[dict]:
        """The quota's amounts that are zero, or that would be zero in a namespace once split evenly
        over ``namespaces`` (default: the request's), where zero makes no sense (NOT_ZERO); the elastic
        floor too, where it is given.  Problems in the shape of pydantic's errors (loc, input, msg)."""
        from decimal import Decimal

        from .models.quantity import format_quantity, to_decimal

        if isinstance(spec, tm.Quota):
            bounds = [(("quota",), spec, spec.model_dump())]
            parts = namespaces or 1
        else:
            bounds = [(("quota",), spec.quota, spec.quota.model_dump())]
            if spec.elastic.floor is not None:
                bounds.append((("elastic", "floor"), spec.floor(), spec.elastic.floor.model_dump(exclude_none=True)))
            parts = namespaces or len(spec.namespaces) or 1
        problems = []
        for loc, quota, given in bounds:
            amounts, shares = quota.amounts(), tenancy.split_quota(quota, parts)
            for field, why in cls.NOT_ZERO.items():
                if field not in given:
                    continue
                if amounts[field] <= 0:
                    problems.append(cls.problem((*loc, field), given[field], f"must be more than 0: {why}"))
                elif to_decimal(shares[tenancy.QUOTA_KEYS[field]]) <= 0:
                    least = format_quantity(Decimal(parts) / 1000) if field == "cpu" else str(parts)
                    problems.append(cls.problem((*loc, field), given[field], (
                        f"split evenly over {parts} namespaces (rounded down) it leaves each 0; ask for at least "
                        f"{least}, or for fewer namespaces")))
        return problems

    @staticmethod
    def problem(loc: tuple, value: Any, msg: str) -> dict[str, Any]:
        """One refusal, in the shape of a pydantic error: where, the value, what is wrong and allowed."""
        return {"type": "value_error", "loc": tuple(loc), "input": value, "msg": msg}

    @staticmethod
    def refused(problems: list[dict[str, Any]], what: str) -> "ClientError":
        """A ClientError carrying ``problems`` (the CLI names the option of each; scripts read the text)."""
        e = ClientError("; ".join(f"{what}: {'.'.join(map(str, p['loc']))} {p['input']!r}: {p['msg']}"
                                  for p in problems))
        e.problems = problems  # type: ignore[attr-defined]
        return e

    def may(self, verb: str, resource: str, name: str = "", namespace: str = "", group: str = "") -> bool:
        """May the caller ``verb`` it?  A SelfSubjectAccessReview: asking is never refused, so it never
        counts as probing (a department's refused reads do)."""
        attrs = {"verb": verb, "resource": resource, "group": group,
                 **({"name": name} if name else {}), **({"namespace": namespace} if namespace else {})}
        body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                "spec": {"resourceAttributes": attrs}}
        try:
            review = kube.create(self.transport, "SelfSubjectAccessReview", body)
        except Exception as e:  # noqa: BLE001  (a review that cannot be asked: not allowed)
            if kube.status_of(e) is None:
                raise self._unreachable(e) from None
            return False
        return bool((review.get("status") or {}).get("allowed"))

    def lookup(self, what: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        """GET one object: it, or None if it does not exist."""
        return self.call(what, kube.get, self.transport, kind, name, namespace)

    def identity(self) -> tuple[str, list[str]]:
        """Who the API server says the caller is: (username, groups); asked once per client."""
        if self._identity is None:
            review = self.call("who you are", kube.create, self.transport, "SelfSubjectReview",
                               {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
            info = (review.get("status") or {}).get("userInfo") or {}
            self._identity = (info.get("username", ""), list(info.get("groups") or []))
        return self._identity

    def department_only(self, readers: tuple[str, ...] = ()) -> bool:
        """Is the caller a department and nothing more (no platform admin, no ``readers`` group
        prefix)?  Then it reads its own objects by name: a list it may not make would be refused, and
        every refusal counts as probing against its department."""
        _, groups = self.identity()
        if tm.ADMIN_GROUP in groups or "system:masters" in groups:
            return False
        return bool(self.departments()) and not any(g.startswith(p) for g in groups for p in readers)

    def sign(self, name: str, decision: str, reason: str = "", roles: list[str] | None = None,
             all_roles: bool = False) -> tuple[list[str], int, dict]:
        """Record the caller's roles' decisions on the tenant's current round (parallel sign-off).
        The role is the caller's reviewer role when it has one (`all_roles`: every one it holds);
        the API server checks it anyway.  Returns (roles, round, the tenant as stored)."""
        from . import signoff

        if decision == "Rejected" and not reason.strip():
            raise ClientError("a rejection needs a reason: pass --reason '...'")
        user, groups = self.identity()
        mine = signoff.roles_of(groups)
        if not roles:
            if not mine:
                raise ClientError(f"you ({user}) hold no reviewer role: members of group "
                                  f"{signoff.REVIEWER_GROUP_PREFIX}<role> sign off (ask the platform bureau)")
            if len(mine) > 1 and not all_roles:
                raise ClientError(f"you hold several reviewer roles ({', '.join(mine)}): pass --role ROLE "
                                  "(or --all-roles)")
            roles = mine
        for role in roles:
            if role not in mine:
                raise ClientError(f"you ({user}) are not in group {signoff.reviewer_group(role)}: you cannot sign "
                                  f"off for {role}" + (f" (your roles: {', '.join(mine)})" if mine else ""))
        for attempt in range(5):  # another role may sign at the same moment: retry on a changed object
            body = self.get(name)
            spec = body["spec"]
            if decision == "Approved" and attempt == 0:  # a child that does not fit its parent: refused unsigned
                self._check_carve(name, tm.TenantSpec.model_validate(spec))
            rnd = int(spec.get("requestRound") or 1)
            for role in roles:
                done = [d for d in spec.get("signoffs") or [] if d.get("role") == role and int(d.get("round") or 1) == rnd]
                if done:
                    d = done[0]
                    raise ClientError(f"{role} already decided round {rnd} of tenant {name!r}: {d['decision']} by "
                                      f"{d['by']} at {d.get('at', '?')} (a recorded sign-off cannot be changed)")
            at = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            quota = spec.get("quota") or tm.Quota().model_dump(mode="json", by_alias=True)
            entries = [{"role": role, "decision": decision, "by": user, "reason": reason, "at": at, "round": rnd,
                        "quota": quota} for role in roles]
            for e in entries:
                tm.SignOff.model_validate(e)
            # the spec as read (generation: status writes do not move it), then one append per decision
            ops = [{"op": "test", "path": "/metadata/generation", "value": body["metadata"]["generation"]}]
            if spec.get("signoffs"):  # one append per decision: the audit trail sees exactly what is new
                ops += [{"op": "add", "path": "/spec/signoffs/-", "value": e} for e in entries]
            else:
                ops.append({"op": "add", "path": "/spec/signoffs", "value": entries})
            try:
                return roles, rnd, kube.patch(self.transport, "Tenant", name, ops,
                                              content_type="application/json-patch+json")
            except Exception as e:  # noqa: BLE001
                if kube.status_of(e) in (409, 422) and _generation_moved(e, self, name, body["metadata"]["generation"]):
                    continue  # the spec changed meanwhile: read again
                raise self._failed(e, f"tenant {name!r}") from None
        raise ClientError(f"tenant {name!r} kept changing while signing; try again")

    def approve(self, name: str, reason: str = "", roles: list[str] | None = None,
                all_roles: bool = False) -> tuple[list[str], int, dict]:
        return self.sign(name, "Approved", reason, roles, all_roles)

    def reject(self, name: str, reason: str, roles: list[str] | None = None) -> tuple[list[str], int, dict]:
        return self.sign(name, "Rejected", reason, roles)

    def suspend(self, name: str, reason: str) -> dict[str, Any]:
        self.get(name)
        return self._patch(name, {"suspended": True, "suspendReason": reason or "suspended by the platform bureau"})

    def resume(self, name: str) -> dict[str, Any]:
        self.get(name)
        return self._patch(name, {"suspended": False, "suspendReason": "", "quarantine": None})

    def set_quota(self, name: str, changes: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
        """Change the quota.  The platform bureau adjusts it within the approved floor and ceiling;
        more than approved (or any change by the department once a reviewer has decided) is a new
        request: spec.requestRound goes up by one and every role signs off again, the approved quota
        staying meanwhile.  Returns (the tenant, the new round or None)."""
        body = self.get(name)
        spec = tm.TenantSpec.model_validate(body["spec"])
        try:
            quota = tm.Quota.model_validate({**spec.quota.model_dump(), **changes})
        except pydantic.ValidationError as e:
            raise ClientError(validation_message(e, "quota.")) from None
        if problems := [p for p in self.quota_problems(quota, len(spec.namespaces)) if p["loc"][-1] in changes]:
            raise self.refused(problems, f"tenant {name!r}")
        _, groups = self.identity()
        platform = tm.ADMIN_GROUP in groups or "system:masters" in groups
        decided = bool(spec.signoffs) or (spec.approval is not None and spec.approval.decision == tm.Decision.Approved)
        over = quota.fits_within(spec.ceiling())
        new_spec = spec.model_copy(update={"quota": quota})
        if decided and (over or not platform):
            try:  # the elastic bounds must still hold around the new quota
                tm.TenantRequest.model_validate(new_spec.model_dump(include=set(tm.TenantRequest.model_fields)))
            except pydantic.ValidationError as e:
                raise ClientError(f"tenant {name!r}: {validation_message(e)}") from None
            self._check_carve(name, new_spec, approved_only=False)
            rnd = spec.request_round + 1
            t = self._patch(name, {"quota": quota.model_dump(mode="json", by_alias=True), "requestRound": rnd})
            return t, rnd
        under = spec.floor().fits_within(quota)
        if under and decided:
            raise ClientError(f"tenant {name!r}: quota below the approved floor for {', '.join(under)}")
        self._check_carve(name, new_spec, approved_only=decided)
        return self._patch(name, {"quota": quota.model_dump(mode="json", by_alias=True)}), None

    def delete(self, name: str) -> None:
        self.get(name)
        self.call(f"tenant {name!r}", kube.request, self.transport, "DELETE", kube.path("Tenant", name),
                  body={"propagationPolicy": "Background"})


def _generation_moved(e, tenants: "Tenants", name: str, generation: int) -> bool:
    """Did a JSON patch's test fail because the spec changed (not because the patch was refused)?"""
    try:
        return int(tenants.get(name)["metadata"]["generation"]) != int(generation)
    except ClientError:
        return False


def _short(e: Exception) -> str:
    text = str(e)
    for needle, says in (("Connection refused", "connection refused"), ("CERTIFICATE_VERIFY_FAILED", "TLS: unknown certificate"),
                         ("timed out", "timed out"), ("Name or service not known", "unknown host")):
        if needle in text:
            return says
    return (text.splitlines()[0] if text else type(e).__name__)[:160]


class Agreements:
    """Sharing agreements on the cluster of the current kubeconfig context."""

    def __init__(self, tenants: Tenants):
        self.t = tenants

    def get(self, name: str) -> dict[str, Any]:
        return self.t.read(f"agreement {name!r}", "ShareAgreement", name, listing="yunshang share list")

    def list(self, tenant: str | None = None) -> list[dict[str, Any]]:
        """Every agreement; for a department, those it is a party to (from its view)."""
        if not self.t.department_only():
            items = self.t.read("agreements", "ShareAgreement")["items"]
        else:
            seen: dict[str, dict] = {}
            for t in self.t.departments():
                for a in self.t.view(t)["agreements"]:
                    seen[a["metadata"]["name"]] = a
            items = list(seen.values())
        return [a for a in items if tenant in (None, a["spec"]["consumer"], a["spec"]["provider"])]

    def tenant_problems(self, **sides: str | None) -> list[dict[str, Any]]:
        """A side (consumer=…, provider=…) that names no tenant, as far as the caller may see (asked first)."""
        for side, who in sides.items():
            if who and self.t.may("get", "tenants", who, group=GROUP) and self.t.lookup(
                    f"tenant {who!r}", "Tenant", who) is None:
                return [self.t.problem((side,), who, "no such tenant (see `yunshang tenant list`)")]
        return []

    def target_problems(self, spec: "am.AgreementRequest | am.OfferSpec") -> list[dict[str, Any]]:
        """What is wrong with the tenants and the Service port an agreement or offer names, as far as
        the caller may see: each tenant exists; the namespace exists and is the provider's by record
        (its label platform.yunshang.io/tenant); the Service exists and has the port.  What the caller
        may not read is not read (each is asked first: a department's refused reads count as probing),
        and the operator checks it before it opens anything.  The first problem found, as a list."""
        t, svc = self.t, spec.service
        if problems := self.tenant_problems(consumer=getattr(spec, "consumer", None), provider=spec.provider):
            return problems
        if t.may("get", "namespaces", svc.namespace):
            ns = t.lookup(f"namespace {svc.namespace}", "Namespace", svc.namespace)
            if ns is None:
                theirs = ""
                if t.may("list", "namespaces"):
                    found = t.call("namespaces", kube.list_all, t.transport, "Namespace",
                                   label_selector=f"{tenancy.LABEL_TENANT}={spec.provider}")
                    theirs = (f"; provider {spec.provider}'s are "
                              f"{', '.join(sorted(n['metadata']['name'] for n in found))}"
                              if found else f"; provider {spec.provider} has none yet")
                return [t.problem(("service", "namespace"), svc.namespace, f"no such namespace{theirs}")]
            owner = ((ns.get("metadata") or {}).get("labels") or {}).get(tenancy.LABEL_TENANT)
            if owner != spec.provider:
                whose = f"tenant {owner}'s" if owner else f"no tenant's (no label {tenancy.LABEL_TENANT})"
                return [t.problem(("service", "namespace"), svc.namespace,
                                  f"is {whose}, not provider {spec.provider}'s: only its own namespaces can be shared")]
        if t.may("get", "services", svc.name, namespace=svc.namespace):
            found = t.lookup(f"service {svc.namespace}/{svc.name}", "Service", svc.name, svc.namespace)
            if found is None:
                there = ""
                if t.may("list", "services", namespace=svc.namespace):
                    listed = t.call("services", kube.list_all, t.transport, "Service", namespace=svc.namespace)
                    names = sorted(x["metadata"]["name"] for x in listed)
                    there = f" (its Services: {', '.join(names)})" if names else " (it has no Services)"
                return [t.problem(("service", "name"), svc.name, f"no Service of that name in {svc.namespace}{there}")]
            ports = [p.get("port") for p in (found.get("spec") or {}).get("ports") or []
                     if p.get("protocol", "TCP") == svc.protocol]
            if svc.port not in ports:
                return [t.problem(("service", "port"), svc.port, (
                    f"Service {svc.namespace}/{svc.name} has no {svc.protocol} port {svc.port} "
                    f"(its {svc.protocol} ports: {', '.join(map(str, ports)) or 'none'})"))]
        return []

    def request(self, name: str, spec: am.AgreementRequest) -> dict[str, Any]:
        """Apply for an agreement, once what it names has been checked (as far as the caller may see)."""
        if problems := self.target_problems(spec):
            raise self.t.refused(problems, f"agreement {name!r}")
        meta: dict[str, Any] = {"name": name}
        if spec.offer:  # the offer-terms admission policy finds the agreement by this label
            meta["labels"] = {am.OFFER_LABEL: spec.offer}
        body = {"apiVersion": API_VERSION, "kind": "ShareAgreement", "metadata": meta,
                "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True)}
        return self.t.call(f"agreement {name!r}", kube.create, self.t.transport, "ShareAgreement", body)

    def _patch(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        self.get(name)
        return self.t.call(f"agreement {name!r}", kube.patch, self.t.transport, "ShareAgreement", name,
                           {"spec": spec})

    def decide(self, name: str, decision: tm.Decision, reason: str = "") -> dict[str, Any]:
        if decision == tm.Decision.Rejected and not reason.strip():
            raise ClientError("a rejection needs a reason: pass --reason '...'")
        if self.get(name)["spec"].get("decision"):
            raise ClientError(f"agreement {name!r} was already decided")
        a = tm.Approval(decision=decision, by=self.t.whoami(), reason=reason,
                     at=dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
        return self._patch(name, {"decision": a.model_dump(mode="json", by_alias=True)})

    def rate(self, name: str, score: int, comment: str = "") -> dict[str, Any]:
        """好差评: the consumer rates the service once the agreement has ended."""
        a = self.get(name)
        if a["spec"].get("rating"):
            r = a["spec"]["rating"]
            raise ClientError(f"agreement {name!r} was rated already: {r['score']}/5 by {r['by']}")
        phase = (a.get("status") or {}).get("phase")
        if phase not in ("Expired", "Revoked"):
            raise ClientError(f"agreement {name!r} is {phase or 'Pending'}: it is rated once it expired or was revoked")
        try:
            rating = am.Rating(score=score, comment=comment, by=self.t.whoami(),
                               at=dt.datetime.now(dt.timezone.utc).replace(microsecond=0))
        except pydantic.ValidationError as e:
            raise ClientError(validation_message(e)) from None
        return self._patch(name, {"rating": rating.model_dump(mode="json", by_alias=True)})

    # -------------------------------------------------------------- the catalogue (目录)
    def offers(self) -> list[dict[str, Any]]:
        return self.t.read("offers", "ShareOffer", listing="yunshang share catalog")["items"]

    def offer(self, name: str) -> dict[str, Any]:
        return self.t.read(f"offer {name!r}", "ShareOffer", name, listing="yunshang share catalog")

    def publish(self, name: str, spec: am.OfferSpec) -> dict[str, Any]:
        if len(name) > 63:
            raise ClientError(f"offer name {name!r} is longer than 63 characters")
        if problems := self.target_problems(spec):
            raise self.t.refused(problems, f"offer {name!r}")
        body = {"apiVersion": API_VERSION, "kind": "ShareOffer", "metadata": {"name": name},
                "spec": spec.model_dump(mode="json", by_alias=True, exclude_none=True)}
        return self.t.call(f"offer {name!r}", kube.create, self.t.transport, "ShareOffer", body,
                           listing="yunshang share catalog")

    def withdraw(self, name: str, reason: str, revoke: bool) -> dict[str, Any]:
        o = self.offer(name)
        if o["spec"].get("withdrawn"):
            raise ClientError(f"offer {name!r} was withdrawn already ({o['spec']['withdrawn'].get('at', '')})")
        w = am.Withdrawal(by=self.t.whoami(), reason=reason, at=dt.datetime.now(dt.timezone.utc).replace(microsecond=0),
                          existing=am.ExistingAgreements.Revoke if revoke else am.ExistingAgreements.RunToEnd)
        return self.t.call(f"offer {name!r}", kube.patch, self.t.transport, "ShareOffer", name,
                           {"spec": {"withdrawn": w.model_dump(mode="json", by_alias=True)}},
                           listing="yunshang share catalog")

    def revoke(self, name: str, reason: str) -> dict[str, Any]:
        return self._patch(name, {"revoked": {"by": self.t.whoami(), "reason": reason,
                                              "at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}})


class AuditTrail:
    """The hash-chained audit records (read-only for everyone but the operator)."""

    def __init__(self, tenants: Tenants):
        self.t = tenants

    def records(self) -> list[audm.AuditRecordSpec]:
        """Every record; for a department, the newest ones that concern it (from its view)."""
        if not self.t.department_only():
            return self._all_records()
        seen: dict[int, audm.AuditRecordSpec] = {}
        for t in self.t.departments():
            for r in self.t.view(t)["audit"]:
                rec = audm.AuditRecordSpec.model_validate(r)
                seen[rec.seq] = rec
        return sorted(seen.values(), key=lambda r: r.seq)

    def _all_records(self) -> list[audm.AuditRecordSpec]:
        out = []
        for item in self.t.call("audit records", kube.list_all, self.t.transport, "AuditRecord"):
            try:
                out.append(audm.AuditRecordSpec.model_validate(item["spec"]))
            except pydantic.ValidationError:
                raise ClientError(f"audit record {item['metadata']['name']} is malformed") from None
        return sorted(out, key=lambda r: r.seq)

    def anchor(self, ref: str) -> audm.Anchor | None:
        """The chain's anchor kept in the ConfigMap ``namespace/name`` (None if there is none yet)."""
        ns, _, name = ref.partition("/")
        if not ns or not name:
            raise ClientError(f"--anchor {ref!r} is not namespace/name (e.g. {DEFAULT_ANCHOR})")
        cm = self.t.lookup(f"audit anchor {ref}", "ConfigMap", name, ns)
        return None if cm is None else audm.Anchor.from_data(cm.get("data"))

    def witness(self, prometheus: str) -> int | None:
        """The highest audit head or anchor seq Prometheus at ``prometheus`` ever recorded (as far
        back as it keeps them; None if it never did): the chain's witness outside the cluster."""
        from .elastic import query

        try:
            return audm.witness_seq(query(prometheus, audm.WITNESS_QUERY, timeout=5))
        except Exception as e:
            raise ClientError(f"Prometheus at {prometheus} did not answer ({_short(e)})") from None
