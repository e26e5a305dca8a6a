"""Fake `wit_world.imports.types`."""

from enum import Enum


class ErrorCode(Enum):
    INVALID_SHAPE = 0
    INVALID_ARGUMENT = 1
    RESOURCE_EXHAUSTED = 2
    BUDGET_EXHAUSTED = 3
    NOT_ALLOWED = 4
    OUT_OF_RANGE = 5
