"""What the numbers were measured on: CPU, cores, memory, interpreter and the versions of the packages that matter."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

#: The packages whose speed ends up in the numbers: the SDK and its HTTP client, the servers, moto, the auth stack.
KEY_PACKAGES = (
    "openai",
    "httpx2",
    "aiohttp",
    "websockets",
    "moto",
    "boto3",
    "pydantic",
    "aws-lambda-powertools",
    "PyJWT",
    "cryptography",
)


@dataclass(frozen=True)
class Machine:
    cpu_model: str
    cores: int
    memory_gib: float
    python: str
    os: str
    packages: dict[str, str] = field(default_factory=dict)

    def one_line(self) -> str:
        return f"{self.cpu_model}, {self.cores} cores, {self.memory_gib:.0f} GiB RAM, Python {self.python}, {self.os}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe() -> Machine:
    return Machine(
        cpu_model=_cpu_model(),
        cores=os.cpu_count() or 0,
        memory_gib=_memory_gib(),
        python=sys.version.split()[0],
        os=f"{platform.system()} {platform.release()} {platform.machine()}",
        packages={package: _version(package) for package in KEY_PACKAGES},
    )
