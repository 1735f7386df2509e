"""What the walker asks about code: function names and call frame information.

A SymbolProvider answers two questions about a module (rust-minidump's
`SymbolProvider`): `fill_symbol` names the function, file and line of a frame, and
`walk_frame` recovers the caller's registers from CFI. NoSymbols answers neither,
so the walker falls back to frame pointers and stack scanning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from chalicelib.processing.minidump import Memory, Module
    from chalicelib.processing.unwind import Frame


class SymbolProvider(Protocol):
    def fill_symbol(self, module: Module, frame: Frame) -> None:
        """Set frame.function, function_offset, file, line and inlines where known.

        Looks up `frame.lookup_address` (the return address minus one for callers).
        Leaves the frame alone when the module has no symbols.
        """

    def walk_frame(self, module: Module, frame: Frame, memory: Memory) -> dict[str, int] | None:
        """The caller's registers recovered by CFI for `frame` in `module`, or None.

        The result holds at least the caller's pc and sp; it holds only registers the
        rules recover (callee-saved ones), the walker marks the rest invalid.
        """

    def has_symbols(self, module: Module) -> bool:
        """Whether a symbol file for this module was found (module `loaded_symbols`)."""


class NoSymbols:
    """The provider used when no symbol files exist: every question answers nothing."""

    def fill_symbol(self, module: Module, frame: Frame) -> None:
        return None

    def walk_frame(self, module: Module, frame: Frame, memory: Memory) -> dict[str, int] | None:
        return None

    def has_symbols(self, module: Module) -> bool:
        return False
