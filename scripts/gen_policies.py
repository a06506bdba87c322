#!/usr/bin/env python3
"""Deterministic generator of Cerbos-format policy sets, for benchmarks and
differential checks against the real Cerbos.

    python3 scripts/gen_policies.py --count 100 --out /tmp/gen100
    python3 scripts/gen_policies.py --count 100 --out /tmp/plain100 --plain

Conditions mode (the default) writes:

  derived_roles/gen_common.yaml      one derivedRoles set, `gen_common`:
                                     `owner` (R.attr.owner == P.id) and
                                     `dept_member` (same department, with an
                                     imported variable)
  export_variables/gen_shared.yaml   one exportVariables set, `gen_shared`
  export_constants/gen_limits.yaml   one exportConstants set, `gen_limits`
  resource_policies/res_NNNN.yaml    N resource policies, kinds res_0000..,
                                     each importing both derived roles and
                                     the exported variables, with four CEL
                                     conditions (attribute comparison, `in`
                                     list, hasIntersection, timestamp and
                                     string functions), a DENY rule and
                                     outputs
  principal_policies/gen_auditor.yaml one principal policy

`--plain` writes N resource policies with role-only rules (no conditions,
no imports) plus one unconditional principal policy.

The output is a pure function of the arguments: the same command always
writes the same bytes. The Rust benchmark (benches/engine.rs) embeds a
generator of the same shape, so keep the two in step.
"""

import argparse
import os
import shutil
import sys

DEPARTMENTS = ["engineering", "marketing", "sales", "finance", "hr"]
STATUSES = ["draft", "review", "published", "archived"]
TAGS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
REGIONS = ["eu", "us", "apac"]

HEADER = "---\napiVersion: api.cerbos.dev/v1\n"


def kind_name(i):
    return f"res_{i:04d}"


def derived_roles():
    return HEADER + """derivedRoles:
  name: gen_common
  variables:
    import:
      - gen_shared
  definitions:
    - name: owner
      parentRoles: ["user", "manager"]
      condition:
        match:
          expr: R.attr.owner == P.id
    - name: dept_member
      parentRoles: ["user"]
      condition:
        match:
          all:
            of:
              - expr: V.same_department
              - expr: R.attr.status != "archived"
"""


def exported_variables():
    return HEADER + """exportVariables:
  name: gen_shared
  definitions:
    same_department: R.attr.department == P.attr.department
    is_published: R.attr.status == "published"
    tag_overlap: hasIntersection(R.attr.tags, P.attr.tags)
"""


def exported_constants():
    return HEADER + """exportConstants:
  name: gen_limits
  definitions:
    max_size: 1000
    regions: ["eu", "us"]
"""


def resource_policy(i):
    """A resource policy whose constants and literals vary with `i`, so the
    policies are distinct, while the expressions' shapes repeat."""
    kind = kind_name(i)
    statuses = [STATUSES[i % 4], STATUSES[(i + 1) % 4]]
    region = REGIONS[i % len(REGIONS)]
    prefix = f"doc{i % 10}"
    threshold = 100 + (i % 50) * 10
    return HEADER + f"""resourcePolicy:
  resource: {kind}
  version: default
  importDerivedRoles:
    - gen_common
  constants:
    import:
      - gen_limits
    local:
      threshold: {threshold}
  variables:
    import:
      - gen_shared
    local:
      visible_status: R.attr.status in {statuses!r}
  rules:
    - actions: ["view", "view:*"]
      effect: EFFECT_ALLOW
      roles: ["user"]
      condition:
        match:
          any:
            of:
              - expr: V.visible_status
              - expr: V.is_published
    - actions: ["edit"]
      effect: EFFECT_ALLOW
      derivedRoles: ["owner"]
      condition:
        match:
          expr: R.attr.size < C.threshold && R.attr.size <= C.max_size
      output:
        when:
          ruleActivated: |-
            {{"rule": "edit", "kind": R.kind, "size": R.attr.size}}
          conditionNotMet: |-
            "edit denied for " + P.id
    - actions: ["share"]
      effect: EFFECT_ALLOW
      derivedRoles: ["dept_member"]
      condition:
        match:
          expr: V.tag_overlap
    - name: approve_recent
      actions: ["approve"]
      effect: EFFECT_ALLOW
      roles: ["manager"]
      condition:
        match:
          all:
            of:
              - expr: timestamp(R.attr.created_at) > timestamp("2020-01-01T00:00:00Z")
              - expr: R.attr.title.startsWith("{prefix}")
              - expr: R.attr.region in C.regions || R.attr.region == "{region}"
    - actions: ["*"]
      effect: EFFECT_ALLOW
      roles: ["admin"]
    - actions: ["delete", "edit"]
      effect: EFFECT_DENY
      roles: ["*"]
      condition:
        match:
          expr: R.attr.locked == true
      output:
        when:
          ruleActivated: '"locked"'
"""


def principal_policy(count):
    last = kind_name(max(count - 1, 0))
    return HEADER + f"""principalPolicy:
  principal: gen_auditor
  version: default
  variables:
    import:
      - gen_shared
  rules:
    - resource: "res_*"
      actions:
        - action: "view:*"
          effect: EFFECT_ALLOW
        - action: "delete"
          effect: EFFECT_DENY
        - name: audit_approve
          action: "approve"
          effect: EFFECT_ALLOW
          condition:
            match:
              expr: V.is_published && P.attr.level >= 3
          output:
            when:
              ruleActivated: P.id + " approved " + R.id
    - resource: "{last}"
      actions:
        - action: "*"
          effect: EFFECT_DENY
"""


def plain_resource_policy(i):
    kind = kind_name(i)
    return HEADER + f"""resourcePolicy:
  resource: {kind}
  version: default
  rules:
    - actions: ["view", "view:*"]
      effect: EFFECT_ALLOW
      roles: ["user", "manager"]
    - actions: ["edit", "share"]
      effect: EFFECT_ALLOW
      roles: ["manager"]
    - actions: ["approve"]
      effect: EFFECT_ALLOW
      roles: ["manager"]
    - actions: ["*"]
      effect: EFFECT_ALLOW
      roles: ["admin"]
    - actions: ["delete"]
      effect: EFFECT_DENY
      roles: ["user"]
"""


def plain_principal_policy():
    return HEADER + """principalPolicy:
  principal: gen_auditor
  version: default
  rules:
    - resource: "res_*"
      actions:
        - action: "view:*"
          effect: EFFECT_ALLOW
        - action: "delete"
          effect: EFFECT_DENY
"""


def generate(count, out, plain=False):
    """Writes the set into `out` (created; existing generated folders are
    replaced) and returns the list of files written, relative to `out`."""
    files = {}
    if plain:
        for i in range(count):
            files[f"resource_policies/{kind_name(i)}.yaml"] = plain_resource_policy(i)
        files["principal_policies/gen_auditor.yaml"] = plain_principal_policy()
    else:
        files["derived_roles/gen_common.yaml"] = derived_roles()
        files["export_variables/gen_shared.yaml"] = exported_variables()
        files["export_constants/gen_limits.yaml"] = exported_constants()
        for i in range(count):
            files[f"resource_policies/{kind_name(i)}.yaml"] = resource_policy(i)
        files["principal_policies/gen_auditor.yaml"] = principal_policy(count)
    for sub in ("derived_roles", "export_variables", "export_constants",
                "resource_policies", "principal_policies"):
        path = os.path.join(out, sub)
        if os.path.isdir(path):
            shutil.rmtree(path)
    for rel, text in sorted(files.items()):
        path = os.path.join(out, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return sorted(files)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, required=True,
                        help="number of resource policies")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--plain", action="store_true",
                        help="role-only rules, no conditions")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    written = generate(args.count, args.out, args.plain)
    print(f"wrote {len(written)} files to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
