"""Cues (feedback tones) outside a call, on the station's own speaker."""

import threading
import time

from firmware.codecs.tones import CUES, cue_frames

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hal.base import AudioDevice


class CuePlayer:
    """Plays one cue on the station's speaker outside a call, paced on its own thread."""

    def __init__(self, audio: "AudioDevice", name: str, volume: int = 100) -> None:
        self.audio = audio
        self.name = name
        self.volume = volume  # [audio] speaker_volume: the board's mixer, else digital gain
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cue-" + name)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        stream = self.audio.open(rate=8000, frame_ms=20)
        gain = 1.0 if self.audio.set_volume(self.volume) else self.volume / 100.0
        try:
            deadline = time.monotonic()
            for frame in cue_frames(CUES[self.name]):
                if self._stop.is_set():
                    break
                if gain != 1.0:
                    from firmware.runtime.gain import apply_gain

                    frame = apply_gain(frame, gain)
                stream.write_frame(frame)
                deadline += 0.02
                if not self.audio.paced:
                    self._stop.wait(max(0.0, deadline - time.monotonic()))
        finally:
            stream.close()
