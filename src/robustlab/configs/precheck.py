"""What the command line checks before Hydra starts a run: every bad config as one line, in well under
a second, before torch or Lightning are imported.

``robustlab`` composes each job's config the way Hydra will (every job of a multirun, or every value of
each sweep when the product is large), turns Hydra's multi-line composition errors into one line (a
misspelt key, group or option names the closest valid one, via difflib), then runs the validator of
every group (robustlab.configs.validate) on the resolved config and checks that the run folder can
be made. Only then does Hydra run the job, which composes the same config again.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from robustlab.configs import schema
from robustlab.configs.schema import SCHEMA_GROUP
from robustlab.configs.validate import check_folder, check_types, type_message, validate
from robustlab.errors import RobustlabError, require

MAX_JOBS = 64  # a larger sweep is checked value by value (each value once), not job by job


def closest(word: str, choices: Iterable[str]) -> str:
    """'; did you mean X?' for the choice nearest ``word``, or '' when none is near."""
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {found[0]}?" if found else ""


def loader(config_dir: str):
    from hydra._internal.config_loader_impl import ConfigLoaderImpl  # the loader Hydra itself lists options with
    from hydra._internal.utils import create_config_search_path

    return ConfigLoaderImpl(config_search_path=create_config_search_path(config_dir))


def all_groups(config_loader, parent: str = "") -> list[str]:
    """Every config group users can pick (data, trainer, hydra/launcher, ...), the schemas' group left out."""
    found = []
    for name in config_loader.list_groups(parent):
        group = f"{parent}/{name}" if parent else name
        if group != SCHEMA_GROUP:
            found += [group, *all_groups(config_loader, group)]
    return found


def unknown_option(overrides: list[str], config_dir: str | None = None) -> str | None:
    """The first ``group=option`` override naming an option its config group lacks (``hydra/launcher=nope``,
    ``trainer=tpu``), as one line naming the options there are; None when every option exists.

    Hydra's own message for this spans a dozen lines; checking first keeps every bad input to one line.
    """
    from robustlab.configs.location import conf_dir

    config_loader = loader(config_dir or conf_dir())
    for override in overrides:
        group, _, value = override.lstrip("+~").partition("=")
        sweep_function = "(" in value  # choice(...), glob(...): Hydra's own syntax, left to Hydra
        if (
            override.startswith("-")
            or not value
            or sweep_function
            or "." in group
            or not config_loader.repository.group_exists(group)
        ):
            continue
        options = config_loader.get_group_options(group)
        for option in value.strip("[]").split(","):  # a multirun sweeps several; [a,b] picks several (logger=[a,b])
            if option not in options and option != "null":
                listed, hint = ", ".join(options), closest(option, options)
                return f"unknown {group} option '{option}' in {override}; the options are: {listed}{hint}"
    return None


def key_paths(node, prefix: str = "") -> list[str]:
    """Every key of a composed config as a dotted path (rpr.max_steps, rpr.balance.per_class, ...)."""
    paths = []
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths += [path, *key_paths(value, path)]
    return paths


def jobs(overrides: list[str], multirun: bool) -> list[list[str]]:
    """The override lists of the jobs Hydra will run: one, or each job of the sweep (capped, see MAX_JOBS)."""
    if not multirun:
        return [overrides]
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = []
    for override in parsed:
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                return []  # range/interval sweeps: left to the sweeper
            choices.append([f"{key}={value}" for value in override.sweep_string_iterator()])
        else:
            choices.append([f"{key}={override.get_value_element_as_str()}"])
    if not choices:
        return [[]]
    if len(list(itertools.islice(itertools.product(*choices), MAX_JOBS + 1))) <= MAX_JOBS:
        return [list(job) for job in itertools.product(*choices)]
    first = [c[0] for c in choices]
    return [first] + [first[:i] + [value] + first[i + 1 :] for i, c in enumerate(choices) for value in c[1:]]


def compose(config_dir: str, config_name: str, overrides: list[str]) -> DictConfig:
    """The job's config with Hydra's node (for hydra.run.dir), composed as Hydra will; errors as one line."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
            return hydra_compose(config_name=config_name, overrides=overrides, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException, ValueError) as error:
        raise RobustlabError(composition_message(error, config_dir, config_name, overrides)) from None


def composition_message(error: Exception, config_dir: str, config_name: str, overrides: list[str]) -> str:
    """Hydra's multi-line composition error as one line; a misspelt key or group names the closest one."""
    text = str(error)
    unknown = re.search(r"Could not override '([^']+)'", text)
    if unknown:
        key = unknown.group(1)
        override = next((o for o in overrides if o.split("=", 1)[0] == key), key)
        known = known_names(config_dir)
        if "." not in key:  # perturbaton=pixels, hydra/launchr=joblib: a group (or a root key) misspelt
            return f"unknown config group or key '{key}' in {override}{closest(key, known)}"
        return f"unknown config key '{key}' in {override}{closest(key, known)} (a new key needs +{override})"
    merging = re.search(r"Error merging override (\S+)", text)
    cause = error.__cause__
    if merging and isinstance(cause, OmegaConfBaseException):
        return f"{type_message('', cause)} (in {merging.group(1)})"
    schema_gap = re.search(r"In '([^']+)'.*\n.*Key '([^']+)' not in '(\w+)'", text)
    if schema_gap:
        source, key, node = schema_gap.groups()
        return (
            f"conf/{source}.yaml sets '{key}', a key the schema {node} lacks; add the field to "
            "src/robustlab/configs/schema.py (or drop the key)"
        )
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(error).__name__)
    return f"bad config: {first}"


def fields(node_type, prefix: str) -> list[str]:
    """The dotted key paths a schema dataclass declares (nested dataclasses included)."""
    found = []
    for name, spec in getattr(node_type, "__dataclass_fields__", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        nested = spec.default_factory if callable(spec.default_factory) else None
        found += [path, *fields(nested, path)] if nested else [path]
    return found


def known_names(config_dir: str) -> list[str]:
    """Every key path the schemas declare and every group name: what a misspelt name may have meant.

    Read from the dataclasses, not from a second composition: instant, and it knows the keys of every
    group option, not only the selected one's."""
    names = fields(schema.Root, "") + all_groups(loader(config_dir))
    for group, options in schema.GROUP_SCHEMAS.items():
        names += [path for node_type in options.values() for path in fields(node_type, group)]
    for sections in schema.PIPELINE_SECTIONS.values():
        names += [path for section, node_type in sections.items() for path in [section, *fields(node_type, section)]]
    return sorted(set(names))


def resolved(cfg: DictConfig) -> dict:
    """The job config as plain values (interpolations resolved), Hydra's own node left out (its job fields,
    job.num and the like, exist only once the job runs). The root's own keys are type-checked before the
    groups are resolved: seed=abc is about seed, not about data.seed: ${seed}."""
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(cfg)  # ${hydra:...} resolves as in the job
    keys = [key for key in cfg if key != "hydra"]
    is_node = {key: OmegaConf.is_config(cfg._get_node(key)) for key in keys}
    tree = {key: resolve(cfg, key, False) for key in keys if not is_node[key]}
    check_types(tree)
    return {key: resolve(cfg, key, True) if is_node[key] else tree[key] for key in keys}


def resolve(cfg: DictConfig, key: str, node: bool):
    try:
        return OmegaConf.to_container(cfg[key], resolve=True) if node else cfg[key]
    except OmegaConfBaseException as error:
        raise RobustlabError(type_message(getattr(error, "full_key", "") or key, error)) from None


def run_folder(cfg: DictConfig, multirun: bool) -> None:
    """Hydra makes this folder first thing; one that cannot be made was a 39-line traceback."""
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    try:
        folder = OmegaConf.select(cfg, key, throw_on_resolution_failure=True)
    except OmegaConfBaseException:
        return  # a resolver only the running job has: Hydra reports it itself
    if folder is not None:
        check_folder(key, str(folder))


def hydra_args(argv: list[str]):
    from hydra._internal.utils import get_args_parser

    args, unknown = get_args_parser().parse_known_args(argv)
    require(
        not unknown,
        f"unrecognised arguments {' '.join(unknown)}: give Hydra's flags (-m, --cfg job, ...) before "
        "or after all the key=value overrides, not between them",
    )
    return args


def precheck(argv: list[str], config_dir: str, config_name: str = "config") -> None:
    """Every check of the command line ``argv`` (robustlab's arguments) that needs no torch; raises
    RobustlabError with one line on the first problem, returns when the run may start."""
    args = hydra_args(argv)
    if args.help or args.hydra_help or args.shell_completion or args.info or args.experimental_rerun:
        return  # Hydra's own commands: nothing is run
    if args.config_dir or args.config_path or args.config_name:
        return  # another config tree: Hydra checks it itself
    problem = unknown_option(args.overrides, config_dir)
    require(problem is None, str(problem))
    for job in jobs(args.overrides, args.multirun):
        cfg = compose(config_dir, config_name, job)
        if args.cfg:
            continue  # --cfg only prints the config
        validate(resolved(cfg))
        run_folder(cfg, args.multirun)
