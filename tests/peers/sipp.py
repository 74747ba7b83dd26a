"""SIPp runs for tests: scripted UAC/UAS with optional RTP replay (DTMF from a pcap).

    result = run_sipp(uac_scenario(pcap=dtmf_pcap, hold_ms=1500), remote=("127.0.0.1", 5070),
                      service="door", workdir=tmp_path)
    assert result.returncode == 0, result.describe()

    uas = start_sipp(uas_scenario(), remote=None, local_port=free_port(), workdir=tmp_path)
    ...  # make the station call 127.0.0.1:<local_port>
    result = uas.wait(timeout=20)

Public API:
- `run_sipp(scenario, remote, local_port=None, extra_args=(), timeout=30, workdir=None,
  calls=1, service="service", transport="u1", media_port=None) -> SippResult`.
  `scenario` is a path or XML text (written into `workdir`); `remote` is (host, port) or
  None for a UAS. RTP echo stays off (SIPp only echoes with `-rtp_echo`; pass it in
  `extra_args` if wanted). SIPp's own `-timeout` is set as well as a hard process timeout.
- `start_sipp(...) -> SippProcess` (same arguments, returns at once): `wait(timeout)`,
  `stop()`, `local_port`, `media_port`.
- `SippResult`: `returncode` (0 all calls OK, 1 some failed, 97/99/-1/-2 as in SIPp's manual),
  `stdout`, `stderr` (the screen and the error log text), `messages` (every SIP message
  sent and received), `stats` (last row of the `-trace_stat` CSV as a dict),
  `successful`, `failed`, `timed_out`, `describe()`.
- `write_scenario(directory, xml_text, name="scenario.xml") -> Path`.
- `uac_scenario(pcap=None, hold_ms=1000, expect_status=200)` and `uas_scenario(pcap=None,
  hold_ms=None, answer_delay_ms=0)`: G.711 (PCMU) + telephone-event/101 offer/answer;
  `pcap` is replayed with `play_pcap_audio` once the call is up. NOTES: on the 200 that is
  ACKed later the recv carries `rrs="true"` so `[next_url]`/`[routes]` are filled in.
"""

import os
import pathlib
import subprocess
import tempfile

from tests.peers.process import ManagedProcess, free_port, require_binary

SDP_OFFER = """v=0
o=sipp 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv"""


def _play(pcap):
    if pcap is None:
        return ""
    return f"""
  <nop>
    <action>
      <exec play_pcap_audio="{os.fspath(pcap)}"/>
    </action>
  </nop>"""


def _pause(milliseconds):
    return f'\n  <pause milliseconds="{milliseconds}"/>' if milliseconds else ""


def uac_scenario(pcap=None, hold_ms=1000, expect_status=200):
    """INVITE [service]@remote, ACK the 2xx, optionally play `pcap`, hold, BYE."""
    if expect_status != 200:
        final = f"""
  <recv response="{expect_status}"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>"""
    else:
        final = f"""
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>{_play(pcap)}{_pause(hold_ms)}
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" crlf="true"/>"""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="doorline-uac">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

{SDP_OFFER}
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>{final}
</scenario>
"""


def uas_scenario(pcap=None, hold_ms=None, answer_delay_ms=0):
    """Answer one INVITE with 180 then 200 (PCMU + telephone-event), optionally play `pcap`
    after the ACK, then wait for the caller's BYE (`hold_ms` pauses before waiting)."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="doorline-uas">
  <recv request="INVITE" crlf="true"/>
  <send>
    <![CDATA[
      SIP/2.0 180 Ringing
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0
    ]]>
  </send>{_pause(answer_delay_ms)}
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      [last_Record-Route:]
      Contact: <sip:sipp@[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

{SDP_OFFER}
    ]]>
  </send>
  <recv request="ACK" crlf="true"/>{_play(pcap)}{_pause(hold_ms)}
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"""


def write_scenario(directory, xml_text, name="scenario.xml"):
    path = pathlib.Path(directory) / name
    path.write_text(xml_text)
    return path


class SippResult:
    def __init__(self, returncode, stdout, stderr, messages, stats, timed_out):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.messages = messages
        self.stats = stats
        self.timed_out = timed_out

    def _count(self, name):
        try:
            return int(self.stats.get(name, 0))
        except ValueError:
            return 0

    @property
    def successful(self):
        return self._count("SuccessfulCall(C)")

    @property
    def failed(self):
        return self._count("FailedCall(C)")

    def describe(self):
        return (f"sipp returncode={self.returncode} timed_out={self.timed_out} "
                f"successful={self.successful} failed={self.failed}\n--- errors ---\n"
                f"{self.stderr[-3000:]}\n--- messages ---\n{self.messages[-6000:]}")

    def __repr__(self):
        return (f"SippResult(returncode={self.returncode}, successful={self.successful}, "
                f"failed={self.failed}, timed_out={self.timed_out})")


def _read(path):
    try:
        return pathlib.Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _parse_stats(text):
    rows = [line.rstrip(";").split(";") for line in text.splitlines() if line.strip()]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0], rows[-1], strict=False))


class SippProcess:
    def __init__(self, scenario, remote, local_port=None, extra_args=(), timeout=30,
                 workdir=None, calls=1, service="service", transport="u1", media_port=None):
        binary = require_binary("sipp")
        self.workdir = pathlib.Path(workdir or tempfile.mkdtemp(prefix="sipp-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        text = os.fspath(scenario) if isinstance(scenario, os.PathLike) else scenario
        if text.lstrip().startswith("<"):
            scenario_path = write_scenario(self.workdir, text)
        else:
            scenario_path = pathlib.Path(text)
        self.timeout = timeout
        self.local_port = local_port or free_port(("udp", "tcp"))
        self.media_port = media_port or free_port(("udp",), 10000, 19998)
        self._files = {name: self.workdir / f"sipp-{self.local_port}.{name}"
                       for name in ("screen", "errors", "messages", "stats")}
        argv = [binary, "-sf", scenario_path, "-m", calls, "-t", transport,
                "-i", "127.0.0.1", "-p", self.local_port,
                "-mi", "127.0.0.1", "-mp", self.media_port, "-s", service, "-nostdin",
                "-timeout", f"{timeout}s", "-timeout_error",
                "-trace_screen", "-screen_file", self._files["screen"],
                "-trace_err", "-error_file", self._files["errors"],
                "-trace_msg", "-message_file", self._files["messages"],
                "-trace_stat", "-stf", self._files["stats"], "-fd", "1"]
        argv += [str(arg) for arg in extra_args]
        if remote is not None:
            argv.append(f"{remote[0]}:{remote[1]}")
        self._process = ManagedProcess(argv, self.workdir / f"sipp-{self.local_port}.out",
                                       cwd=self.workdir)
        self._process.start()

    def wait(self, timeout=None):
        """Wait for SIPp to finish (bounded: its own -timeout plus a margin)."""
        limit = timeout if timeout is not None else self.timeout + 5
        timed_out = False
        try:
            self._process.wait(limit)
        except subprocess.TimeoutExpired:
            timed_out = True
            self._process.stop(2.0)
        # SIPp stopped by us has not finished its scenario, whatever its exit status says:
        # report 124 (timeout(1)'s code) so that a `returncode == 0` check cannot pass.
        return SippResult(
            returncode=124 if timed_out else self._process.returncode,
            stdout=_read(self._files["screen"]) + self._process.log_text(),
            stderr=_read(self._files["errors"]),
            messages=_read(self._files["messages"]),
            stats=_parse_stats(_read(self._files["stats"])),
            timed_out=timed_out,
        )

    def stop(self):
        self._process.stop(2.0)

    @property
    def alive(self):
        return self._process.alive


def start_sipp(scenario, remote, **options):
    return SippProcess(scenario, remote, **options)


def run_sipp(scenario, remote, local_port=None, extra_args=(), timeout=30, **options):
    process = SippProcess(scenario, remote, local_port=local_port, extra_args=extra_args,
                          timeout=timeout, **options)
    return process.wait()
