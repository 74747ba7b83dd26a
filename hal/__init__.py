"""Hardware abstraction: roles (the `call` button, the `door` relay) instead of pins.

    open_board(board, *, pin_factory=None, mic=None, speaker_dir=None, echo_path=None,
               camera=None, cache_dir=None) -> hal.base.Board
        board: a name from boards/ ("rpi4", "pc-sim"), a path to a .toml file, or a BoardSpec.
        camera (sim boards): "pattern" or a file path (--camera); Pi boards: [camera] in the
        board file. `board.camera` is a hal.camera.Camera or None.
        pin_factory: a gpiozero pin factory for Pi boards (default: LGPIOFactory); tests pass
        gpiozero's MockFactory.  mic / speaker_dir: WAV in and per-call WAV out (sim boards);
        echo_path: the room's impulse response WAV (sim boards, hal.room; ValueError if bad).
        cache_dir: the state directory, where an unchanged board file's parsed TOML is kept
        between starts (firmware/tomlcache.py; it is validated every time).

Board files and their validation: hal.board.  The device interface: hal.base.  Drivers: hal.pi
(gpiozero + libasound through ctypes, hal.libasound) and hal.sim (memory + WAV).
"""

from typing import TYPE_CHECKING

from hal.board import BoardError, BoardSpec, load_board

if TYPE_CHECKING:
    import pathlib
    from typing import Any

    from hal.pi import PiBoard
    from hal.sim import SimBoard


def open_board(board: "BoardSpec | str", *, pin_factory: "Any" = None,
               mic: "str | pathlib.Path | None" = None,
               speaker_dir: "str | pathlib.Path | None" = None,
               echo_path: "str | pathlib.Path | None" = None,
               camera: "str | None" = None,
               cache_dir: "str | None" = None) -> "SimBoard | PiBoard":
    spec = board if isinstance(board, BoardSpec) else load_board(board, cache_dir)
    if spec.kind == "sim":
        from hal.sim import SimBoard

        sim = SimBoard(spec, mic=mic, speaker_dir=speaker_dir, echo_path=echo_path)
        if camera:
            from hal.camera import sim_camera

            sim.camera = sim_camera(camera)
        return sim
    if mic is not None or speaker_dir is not None or echo_path is not None or \
            camera is not None:
        raise BoardError(spec.source, ["--mic, --speaker-dir, --echo-path and --camera apply to "
                                       "simulated boards only (Pi boards declare [camera] in "
                                       "their file)"])
    # Imported only for Pi boards so that the simulator runs without the Pi libraries.
    from hal.pi import PiBoard

    board_ = PiBoard(spec, pin_factory=pin_factory)
    if spec.camera is not None:
        from hal.camera import open_camera

        board_.camera = open_camera(spec.camera)
    return board_


__all__ = ["BoardError", "BoardSpec", "load_board", "open_board"]
