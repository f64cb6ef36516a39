"""argv builders for the Docker CLI on a host (or on the control node for `save`)."""

from __future__ import annotations

from typing import Mapping, Sequence

LABEL_PREFIX = "org.llmfleet"
CONFIG_LABEL = f"{LABEL_PREFIX}.config"


def _operand(value: str, what: str) -> str:
    """A container name or image as docker's operand; one starting with '-' would be read as an option."""
    if value.startswith("-"):
        raise ValueError(f"{what} {value!r} starts with '-': docker would read it as an option")
    return value


def _pair(key: str, value: str, what: str) -> str:
    """``key=value`` (env, label) or ``src:dst`` (volume) that docker splits back into the same two parts."""
    sep = ":" if what == "volume" else "="
    if not key or sep in key or (what == "volume" and sep in value):
        raise ValueError(f"{what} {key!r}{sep}{value!r}: docker would split it elsewhere")
    return f"{key}{sep}{value}"


def _docker(docker_host: str | None) -> list[str]:
    return ["docker", "-H", docker_host] if docker_host else ["docker"]


def run(
    name: str,
    image: str,
    command: Sequence[str],
    *,
    device_flags: Sequence[str],
    volumes: Sequence[tuple[str, str]] = (),
    env_file: str | None = None,
    env: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    restart: str | None = None,
) -> list[str]:
    """`docker run -d` for the server: device flags first, as the cookbook writes them."""
    argv = ["docker", "run", "-d", "--name", _operand(name, "container name"), *device_flags]
    if restart:
        argv.append(f"--restart={restart}")
    for src, dst in volumes:
        argv += ["-v", _pair(src, dst, "volume")]
    if env_file:
        argv += ["--env-file", env_file]
    for key, value in sorted((env or {}).items()):
        argv += ["-e", _pair(key, value, "env")]
    for key, value in sorted((labels or {}).items()):
        argv += ["--label", _pair(key, value, "label")]
    return argv + [_operand(image, "image"), *command]


def remove(name: str) -> list[str]:
    return ["docker", "rm", "-f", _operand(name, "container name")]


def stop(name: str, timeout_s: int = 30) -> list[str]:
    return ["docker", "stop", "-t", str(timeout_s), _operand(name, "container name")]


def logs(name: str, tail: int | None = None, timestamps: bool = False) -> list[str]:
    argv = ["docker", "logs"]
    if timestamps:
        argv.append("--timestamps")
    if tail is not None:
        argv += ["--tail", str(tail)]
    return argv + [_operand(name, "container name")]


def exec_(name: str, command: Sequence[str], env: Mapping[str, str] | None = None) -> list[str]:
    argv = ["docker", "exec"]
    for key, value in sorted((env or {}).items()):
        argv += ["-e", _pair(key, value, "env")]
    return argv + [_operand(name, "container name"), *command]


def pull(image: str) -> list[str]:
    return ["docker", "pull", _operand(image, "image")]


def load() -> list[str]:
    """`docker load` reading the image tar from stdin (the push path)."""
    return ["docker", "load"]


def save(image: str, docker_host: str | None = None) -> list[str]:
    """`docker save` on the control node, to stream an image to hosts."""
    return _docker(docker_host) + ["save", _operand(image, "image")]


def layer_chains() -> list[str]:
    """The engine's image store (DriverStatus, one line of JSON), then every image's layer chain, one per line
    (what `imagelayers.parse_probe` reads: a push sends only the layers a host lacks)."""
    script = ("docker info --format '{{json .DriverStatus}}' && docker image ls -q --no-trunc | sort -u"
              " | xargs -r docker image inspect --format '{{json .RootFS.Layers}}'")  # fmt: skip
    return ["sh", "-c", script]


def image_id(image: str, docker_host: str | None = None) -> list[str]:
    return _docker(docker_host) + ["image", "inspect", "--format", "{{.Id}} {{.Size}}", _operand(image, "image")]


def inspect_container(name: str) -> list[str]:
    return ["docker", "inspect", "--type", "container", "--format", "{{json .}}", _operand(name, "container name")]


def container_state(name: str) -> list[str]:
    return ["docker", "inspect", "--type", "container", "--format", "{{.State.Status}} {{.State.ExitCode}}", _operand(name, "container name")]


def version_json() -> list[str]:
    return ["docker", "version", "--format", "{{json .}}"]


def rename(name: str, new_name: str) -> list[str]:
    return ["docker", "rename", _operand(name, "container name"), _operand(new_name, "container name")]


def start(name: str) -> list[str]:
    return ["docker", "start", _operand(name, "container name")]


def container_image(name: str) -> list[str]:
    """The image ID a container was created from (what a rollback goes back to)."""
    return ["docker", "inspect", "--type", "container", "--format", "{{.Image}}", _operand(name, "container name")]
