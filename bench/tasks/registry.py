"""Task registry: finds the task YAMLs, validates them, and serves `Task` values.

Tasks are data (tasks/**/*.yaml, read with PyYAML's safe loader, `_base_` merged as mmengine would; files
whose name starts with "_" are bases or group lists, not tasks). A `_family.yaml` declares a whole
task family found in a downloaded folder (bench.tasks.family); its tasks and groups join the YAML ones.
Every file is checked against `SCHEMA`: unknown keys, missing keys, wrong types, duplicate names and inconsistent groups raise a
UserError naming the file and the key. Valid tasks go into an mmengine `Registry("task")`; lookups
of unknown names raise a UserError with the closest valid name.

The tasks directory is the repository's `tasks/` (found from this package), or $GLIP_BENCH_TASKS.
The data root is `--data-root`, else $GLIP_BENCH_DATA, else ./data; task paths are relative to it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from bench.tasks.family import find_families, read_family
from bench.tasks.task import Task, resolve_data_root
from bench.tasks.task_file import (
    NAME_RE,
    _validate,
    check_duplicate_keys,
    key_error,
    read_task_yaml,
    shipped_tasks_dir,
    str_map,
)
from bench.util.errors import UserError, unknown_name

__all__ = ["Task", "TaskRegistry", "all_groups", "default_tasks_dirs", "get_task", "load_registry",
           "resolve_data_root", "resolve_tasks"]


def default_tasks_dirs() -> list[Path]:
    """The shipped tasks, then each folder of $GLIP_BENCH_TASKS (`--tasks-dir DIR`; several joined by the
    path separator): a user's own tasks add to the shipped ones (a name defined twice is an error)."""
    env = os.environ.get("GLIP_BENCH_TASKS") or ""
    return [shipped_tasks_dir(), *(Path(p) for p in env.split(os.pathsep) if p)]


# ---- the registry -----------------------------------------------------------------------------
class _Entry:
    """What the mmengine registry holds: a callable that returns the task (registries hold callables)."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.__name__ = task.name

    def __call__(self) -> Task:
        return self.task


class TaskRegistry:
    """All tasks of one or more tasks directories, validated, in an mmengine Registry, plus their groups."""

    def __init__(self, directories: Path | Sequence[Path]) -> None:
        from mmengine.registry import Registry

        dirs = [Path(directories)] if isinstance(directories, (str, os.PathLike)) else [Path(d) for d in directories]
        self.directories = dirs
        self.directory = dirs[-1]  # the last one: where a user's own tasks are (named in messages)
        self.registry = Registry("task")
        self.group_files: dict[str, Path] = {}
        self.declared: dict[str, dict[str, str]] = {}  # group -> member task name -> note (official config)
        self.descriptions: dict[str, str] = {}
        for d in dirs:
            if not d.is_dir():
                raise UserError(f"tasks directory not found: {d} (pass --tasks-dir DIR or set GLIP_BENCH_TASKS)")
        self.origin: dict[str, Path] = {}  # task or group name -> the tasks directory that defined it
        for d in dirs:  # later directories (a user's own) replace what an earlier one defines, by name
            files = sorted(d.rglob("*.yaml"))
            for path in files:
                check_duplicate_keys(path)
            for path in files:
                if path.name == "_groups.yaml":
                    self._read_groups(path, d)
            for path in files:
                if not path.name.startswith("_"):
                    self.register(_validate(read_task_yaml(path), path), d)
            for path in find_families(d):
                self._add_family(path, d)
        self._check_groups()

    def _claim(self, kind: str, name: str, where: Path, directory: Path, earlier: Path | None) -> bool:
        """Whether `name` may be (re)defined from `directory`: a name defined twice in one tasks directory is an
        error naming both files; one an earlier directory defined is replaced (logged), so a user's folder can
        override a shipped task or group by name. Returns True when it replaces one."""
        if earlier is None:
            self.origin[f"{kind}:{name}"] = directory
            return False
        if self.origin.get(f"{kind}:{name}") == directory:
            raise UserError(f"{kind} name {name!r} is defined twice: {earlier} and {where}")
        from bench.util.logs import get_logger

        get_logger("tasks").info("%s %r from %s replaces the one in %s", kind, name, where, earlier)
        self.origin[f"{kind}:{name}"] = directory
        return True

    def register(self, task: Task, directory: Path | None = None) -> None:
        """Add a task; a name registered twice from one directory raises, naming both files."""
        existing = self.registry.module_dict.get(task.name)
        replace = self._claim("task", task.name, Path(task.file), directory or self.directory,
                              Path(existing.task.file) if existing is not None else None)
        self.registry.register_module(name=task.name, module=_Entry(task), force=replace)

    def names(self) -> list[str]:
        return sorted(self.registry.module_dict)

    def get(self, name: str) -> Task:
        """The task called `name`; unknown names raise a UserError listing the valid ones and the closest."""
        if name not in self.registry.module_dict:  # checked first: mmengine would read "a.b" as a scope
            raise unknown_name("task", name, self.names())
        return self.registry.get(name)()

    def _read_groups(self, path: Path, directory: Path | None = None) -> None:
        cfg = read_task_yaml(path)
        if set(cfg) != {"groups"} or not isinstance(cfg["groups"], dict):
            raise UserError(f"{path}: a _groups.yaml holds one key 'groups': {{group: {{description, members}}}}")
        for group, spec in cfg["groups"].items():
            if not isinstance(group, str) or not NAME_RE.match(group):
                raise key_error(path, f"groups.{group}", "group names are lower-case words joined by dashes")
            self._claim("group", group, path, directory or self.directory, self.group_files.get(group))
            if not isinstance(spec, dict) or set(spec) - {"description", "members"} or "members" not in spec:
                raise key_error(path, f"groups.{group}", "must be a mapping with 'members' (and optional 'description')")
            members = spec["members"]
            if isinstance(members, list):
                members = {m: "" for m in members}
            members = str_map(members, path, f"groups.{group}.members")
            bad = [m for m in members if not NAME_RE.match(m)]
            if bad:
                raise key_error(path, f"groups.{group}.members", f"{bad} are not valid task names")
            self.declared[group] = members
            self.group_files[group] = path
            self.descriptions[group] = str(spec.get("description", ""))

    def _add_family(self, path: Path, directory: Path | None = None) -> None:
        """The tasks and groups of a task family file (bench.tasks.family), declared as a _groups.yaml would."""
        family = read_family(path)
        for task in family.tasks:
            self.register(task, directory)
        for group, members in family.groups.items():
            self._claim("group", group, path, directory or self.directory, self.group_files.get(group))
            self.declared[group] = {m: "" for m in members}
            self.group_files[group] = path
            self.descriptions[group] = family.descriptions.get(group, "")

    def _check_groups(self) -> None:
        """A task that names a declared group must be listed in it, and a listed, defined task must
        name the group; group names may not shadow task names."""
        tasks = [self.get(n) for n in self.names()]
        for t in tasks:
            for g in t.groups:
                if g in self.declared and t.name not in self.declared[g]:
                    raise UserError(f"{t.file}: key 'groups': {t.name} says it is in {g!r}, but {self.group_files[g]} "
                                    f"does not list it; to join no group set `groups: []` in {Path(t.file).name} "
                                    f"(a copied ODinW task inherits {list(t.groups)}), or list {t.name} under {g!r} there")
        for g, members in self.declared.items():
            for m in members:
                if m in self.registry.module_dict and g not in self.get(m).groups:
                    raise UserError(f"{self.get(m).file}: key 'groups': {self.group_files[g]} lists {m} in {g!r}; add {g!r} to its groups")
        clash = sorted(set(self.groups()) & set(self.registry.module_dict))
        if clash:
            raise UserError(f"names used both as task and group: {clash}")

    def groups(self) -> dict[str, list[str]]:
        """Group -> member task names (declared order for declared groups, including members without
        a YAML yet; otherwise the sorted tasks that name the group)."""
        out = {g: list(m) for g, m in self.declared.items()}
        for n in self.names():
            for g in self.get(n).groups:
                if g not in out:
                    out[g] = []
                if g not in self.declared and n not in out[g]:
                    out[g].append(n)
        return out

    def group_members(self, group: str) -> list[tuple[str, bool]]:
        """(member name, defined?) for each member of a group."""
        groups = self.groups()
        if group not in groups:
            raise unknown_name("group", group, groups)
        return [(m, m in self.registry.module_dict) for m in groups[group]]

    def list(self, group: str | None = None) -> list[Task]:
        if group is None:
            return [self.get(n) for n in self.names()]
        return [self.get(m) for m, defined in self.group_members(group) if defined]

    def resolve(self, spec: str) -> list[Task]:
        """"a,b,odinw13" -> tasks (groups expand; duplicates dropped; order kept). A group with
        members that have no YAML raises, naming them, rather than running a partial group."""
        out: dict[str, Task] = {}
        groups = self.groups()
        for token in [t.strip() for t in spec.split(",") if t.strip()]:
            if token in self.registry.module_dict:
                out.setdefault(token, self.get(token))
            elif token in groups:
                missing = [m for m, ok in self.group_members(token) if not ok]
                if missing:
                    raise UserError(
                        f"group {token!r} has {len(missing)} members without a task YAML: {', '.join(missing)}; "
                        f"add them under {self.directory} or name the defined tasks one by one"
                    )
                for t in self.list(token):
                    out.setdefault(t.name, t)
            else:
                raise unknown_name("task/group name", token, [*self.names(), *groups])
        if not out:
            raise UserError(f"no task named in {spec!r}")
        return list(out.values())


_CACHE: dict[tuple[Path, ...], TaskRegistry] = {}


def load_registry(directory: str | os.PathLike | None = None, reload: bool = False) -> TaskRegistry:
    """The (cached) registry of one tasks directory, or by default of default_tasks_dirs()."""
    dirs = [Path(directory)] if directory is not None else default_tasks_dirs()
    key = tuple(d.resolve() for d in dirs)
    if reload or key not in _CACHE:
        _CACHE[key] = TaskRegistry(dirs)
    return _CACHE[key]


def get_task(name: str, tasks_dir: str | os.PathLike | None = None) -> Task:
    return load_registry(tasks_dir).get(name)


def resolve_tasks(spec: str, tasks_dir: str | os.PathLike | None = None) -> list[Task]:
    return load_registry(tasks_dir).resolve(spec)


def all_groups(tasks_dir: str | os.PathLike | None = None) -> dict[str, list[str]]:
    return load_registry(tasks_dir).groups()
