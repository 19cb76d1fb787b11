"""Restaurant configuration files (docs/interface.md §2): load, validate, publish.

A file holds one restaurant object or a list of them, as YAML or JSON. Any problem is a
`ConfigFileError` whose one-line message names the file, the restaurant's index and the
bad field path, e.g. `ember.yaml: restaurant [0] (r-ember): tables.3.capacity: ...`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from config.settings import Settings
from models.common import format_error
from models.restaurant import RestaurantConfig
from producers.publisher import Publisher


class ConfigFileError(ValueError):
    """A restaurant file that cannot be read, parsed or validated. str() is for the user."""


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1 base-60 numbers: `start: 12:00` stays the string "12:00"
    (plain PyYAML would read it as the integer 720)."""


_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver(
    _INT,
    re.compile(
        r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0[0-7_]+
        |[-+]?(?:0|[1-9][0-9_]*)
        |[-+]?0x[0-9a-fA-F_]+)$""",
        re.X,
    ),
    list("-+0123456789"),
)
_YamlLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_text(text: str, *, name: str, as_json: bool) -> Any:
    try:
        if as_json:
            return json.loads(text)
        return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if as_json else "YAML"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigFileError(f"{name}: not valid {kind}: {first_line}") from exc


def validate_documents(data: Any, *, name: str) -> list[RestaurantConfig]:
    """One restaurant object or a list of them -> validated configs (errors name the field)."""
    items = data if isinstance(data, list) else [data]
    if not items:
        raise ConfigFileError(f"{name}: no restaurants in the file")
    configs: list[RestaurantConfig] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigFileError(
                f"{name}: restaurant [{index}]: expected an object with restaurant_id, name, "
                f"slug, tables, ... got {type(item).__name__}"
            )
        try:
            configs.append(RestaurantConfig.model_validate(item))
        except ValidationError as exc:
            rid = item.get("restaurant_id")
            label = f"restaurant [{index}]" + (f" ({rid})" if isinstance(rid, str) else "")
            detail = format_error(exc).replace("Value error, ", "").replace("<root>: ", "")
            raise ConfigFileError(f"{name}: {label}: {detail}") from exc
    return configs


def load_file(path: str | Path) -> list[RestaurantConfig]:
    """Read a YAML or JSON restaurant file (`.json` is JSON; anything else is read as YAML,
    which also accepts JSON)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigFileError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigFileError(f"{path}: not UTF-8 text") from exc
    data = parse_text(text, name=str(path), as_json=path.suffix.lower() == ".json")
    return validate_documents(data, name=str(path))


async def publish_configs(settings: Settings, configs: list[RestaurantConfig]) -> int:
    async with Publisher(settings, client_id="seatflow-restaurants") as publisher:
        for cfg in configs:
            await publisher.publish_restaurant(cfg)
        await publisher.flush()
    return len(configs)


async def publish_file(settings: Settings, path: str | Path) -> int:
    """Validate the whole file first (nothing is published if any restaurant is bad), then
    publish every restaurant to `<prefix>restaurants`. Returns how many were published."""
    return await publish_configs(settings, load_file(path))
