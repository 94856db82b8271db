"""The lab's own Asterisk configuration, rendered into the chroot on every start.

The lab never touches the chroot's /etc/asterisk: everything lives under
``/pbxbridge-lab/<AMI port>`` inside the chroot (one directory per running lab, so
labs of parallel test sessions never share a control socket) with its own run, log, spool and lib
directories, so a rebuilt rootfs and a stale run can never mix.
"""

from __future__ import annotations

from dataclasses import dataclass

LAB_ROOT = "/pbxbridge-lab"

# Queue member ring timeout: a call taker who lets a call ring longer than this is
# a ring-no-answer (AgentRingNoAnswer) and the queue tries the next member.
MEMBER_TIMEOUT = 4
# The backup queue's call takers let a call ring longer, so that one ring can span a
# pbxbridge restart (tests/integration/test_restart_lab.py).
BACKUP_MEMBER_TIMEOUT = 15
CALLTAKERS = ("1001", "1002", "1003", "1004")
BACKUP_TAKERS = ("2001", "2002")
PBXBRIDGE_USER = "pbxbridge"
DRIVER_USER = "labdriver"

# Lab-only context names; the emergency entry context is what a PBX administrator
# writes, the others stand in for callers, call takers and internal phones.
ENTRY_CONTEXT = "lab-emergency"
CALLER_CONTEXT = "lab-caller"
AGENTS_CONTEXT = "lab-agents"
INTERNAL_CONTEXT = "lab-internal"
AGENCY_CONTEXT = "lab-agency"  # stands in for the police, fire, SAR and ambulance lines
CALLEE_CONTEXT = "lab-callee"  # stands in for the outside world a callback dials
TAKERS_CONTEXT = "lab-takers"  # what a call taker's phone may dial (feature codes)
TRUNK_CONTEXT = "lab-trunk"  # delivers calls with test-chosen caller names


@dataclass(frozen=True)
class LabSettings:
    ami_port: int
    pbxbridge_secret: str
    driver_secret: str
    system_name: str = "lab"

    @property
    def lab_dir(self) -> str:
        """This lab's directory, as Asterisk inside the chroot sees it."""
        return f"{LAB_ROOT}/{self.ami_port}"


def asterisk_conf(s: LabSettings) -> str:
    d = s.lab_dir
    return f"""[directories]
astcachedir => {d}/cache
astetcdir => {d}/etc
astmoddir => /usr/lib/x86_64-linux-gnu/asterisk/modules
astvarlibdir => {d}/lib
astdbdir => {d}/lib
astkeydir => {d}/lib
astdatadir => /usr/share/asterisk
astagidir => {d}/agi-bin
astspooldir => {d}/spool
astrundir => {d}/run
astlogdir => {d}/log
astsbindir => /usr/sbin

[options]
systemname = {s.system_name}
; Unique ids carry the system name, as on a production PBX that sets it.
"""


def modules_conf() -> str:
    # Loading only what the lab uses makes Asterisk boot in about a second and keeps
    # channel drivers that want network ports (SIP, IAX) out of the way.
    wanted = [
        "pbx_config.so",
        "app_queue.so",
        "app_dial.so",
        "app_stack.so",
        "app_userevent.so",
        "app_verbose.so",
        "app_playback.so",  # the callback feature's fail-safe prompt
        "app_db.so",
        "app_originate.so",
        "app_transfer.so",
        "app_blind_transfer.so",
        "app_attended_transfer.so",
        "app_senddtmf.so",
        "func_db.so",
        "func_logic.so",
        "func_strings.so",
        "func_cut.so",
        "func_callerid.so",
        "func_channel.so",
        "func_math.so",
        "func_global.so",
        "func_rand.so",
        "func_base64.so",  # lab-trunk: hostile caller names
        "bridge_simple.so",
        "bridge_softmix.so",
        "bridge_holding.so",
        "bridge_builtin_features.so",
        "res_speech.so",  # res_agi needs its symbols
        "res_agi.so",
        "res_musiconhold.so",
        "codec_ulaw.so",
        "format_sln.so",  # the lab's silent prompts (transfer)
        "res_timing_timerfd.so",  # DTMF and prompt timing
    ]
    return "[modules]\nautoload = no\n" + "".join(f"load = {m}\n" for m in wanted)


def manager_conf(s: LabSettings) -> str:
    return f"""[general]
enabled = yes
port = {s.ami_port}
bindaddr = 127.0.0.1
; Every event carries Timestamp: (microseconds): pbxbridge's clock is Asterisk's.
timestampevents = yes

[{PBXBRIDGE_USER}]
secret = {s.pbxbridge_secret}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = system,call,agent,user
write = system,reporting
writetimeout = 100

[{DRIVER_USER}]
secret = {s.driver_secret}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = all
write = all
writetimeout = 1000
"""


def logger_conf() -> str:
    return """[general]
queue_log = yes
queue_log_to_file = yes
dateformat = %F %T.%3q

[logfiles]
messages => notice,warning,error
full => notice,warning,error,verbose(3)
"""


def queues_conf() -> str:
    def members(numbers: tuple[str, ...]) -> str:
        return "".join(
            f"member => Local/{n}@{AGENTS_CONTEXT}/n,0,Taker {n},Local/{n}@{AGENTS_CONTEXT}\n"
            for n in numbers
        )

    common = """strategy = rrmemory
retry = 1
wrapuptime = 0
ringinuse = no
; Ring a free call taker for every waiting caller, not only for the head of the queue.
autofill = yes
joinempty = yes
leavewhenempty = no
announce-frequency = 0
periodic-announce-frequency = 0
announce-position = no
"""
    return f"""[general]
persistentmembers = no
shared_lastcall = yes

[calltakers]
timeout = {MEMBER_TIMEOUT}
{common}{members(CALLTAKERS)}
[backup]
timeout = {BACKUP_MEMBER_TIMEOUT}
{common}{members(BACKUP_TAKERS)}"""


def extensions_conf() -> str:
    # Per-call behaviour comes from channel variables set in Originate (inherited with
    # the __ prefix down to the call taker's Local channel):
    #   GREETING  seconds of greeting before the queue
    #   PATIENCE  seconds after which the caller hangs up (set on the caller's side)
    #   RINGS     "/"-separated list: how long each successive call taker lets it ring
    #             (>= MEMBER_TIMEOUT means ring-no-answer); the last value repeats
    #   TALK      seconds of conversation once answered
    #   HOLD      1: no call taker is eligible in the first queue (the caller waits
    #             with no phone ringing, as when every call taker is busy)
    #   QTIMEOUT  seconds in the first queue before overflow to the backup queue
    #   BHOLD     1: nobody eligible in the backup queue either
    #   BTIMEOUT  seconds in the backup queue before the PBX gives up
    #   LABID     the generator's id for the call (AstDB key for the ring counter)
    #   XFER      blind|attended: the answering call taker transfers the caller to AGENCY
    #   CLASSIFY  DTMF the call taker sends during the call (a classification feature)
    #   POSTCLASS on a call placed to the call taker's phone: classify its last call
    return f"""[general]
static = yes
writeprotect = yes

[globals]
; Where a call taker's transfer digits are looked up (read from globals as a fallback).
TRANSFER_CONTEXT = lab-agency

#include "pbxbridge.conf"

[{ENTRY_CONTEXT}]
; What a PSAP's emergency entry context looks like: the hook first, a short greeting,
; the call-taker queue and an overflow to the backup queue.
exten => 112,1,Gosub(pbxbridge,offered,1(112))
 same => n,Answer()
 same => n,Wait(${{IF(${{EXISTS(${{GREETING}})}}?${{GREETING}}:1)}})
 same => n,Set(QUEUE_MIN_PENALTY=${{IF($["${{HOLD}}" = "1"]?100:0)}})
 same => n,Queue(calltakers,tb(lab-member^s^1),,,${{IF(${{EXISTS(${{QTIMEOUT}})}}?${{QTIMEOUT}}:30)}})
 same => n,GotoIf($["${{QUEUESTATUS}}" != "TIMEOUT"]?done)
 same => n,Set(QUEUE_MIN_PENALTY=${{IF($["${{BHOLD}}" = "1"]?100:0)}})
 same => n,Queue(backup,tb(lab-member^s^1),,,${{IF(${{EXISTS(${{BTIMEOUT}})}}?${{BTIMEOUT}}:30)}})
 same => n(done),Hangup()

[lab-member]
; Run on each call taker's channel before it rings (Queue option b): the call
; taker's classification features.
exten => s,1,Set(DYNAMIC_FEATURES=pbx_emergency#pbx_prank#pbx_ghost)
 same => n,Return()

[{TAKERS_CONTEXT}]
; What a call taker's phone dials besides calls: the callback feature code.
exten => *112,1,Gosub(pbxbridge,callback,1(Local/,@{CALLEE_CONTEXT}))
 same => n,Hangup()

[{TRUNK_CONTEXT}]
; A trunk delivering a caller name chosen by the test (NAMEB64, base64: any bytes,
; invalid UTF-8 and CR/LF included), then the emergency entry context.
exten => _X.,1,Set(CALLERID(name)=${{BASE64_DECODE(${{NAMEB64}})}})
 same => n,Goto({ENTRY_CONTEXT},${{EXTEN}},1)

[{CALLER_CONTEXT}]
; The caller's own side: stays on the line for PATIENCE seconds, then hangs up.
exten => s,1,Wait(${{IF(${{EXISTS(${{PATIENCE}})}}?${{PATIENCE}}:600)}})
 same => n,Hangup()

[{AGENTS_CONTEXT}]
; A call taker's phone. The n-th attempt for one call rings for the n-th value of
; RINGS (the last one repeats), then answers and talks for TALK seconds.
exten => _X.,1,GotoIf($["${{POSTCLASS}}" != ""]?postclass)
 same => n,Set(PREV=${{DB(labring/${{LABID}})}})
 same => n,Set(ATTEMPT=$[${{IF(${{EXISTS(${{PREV}})}}?${{PREV}}:0)}} + 1])
 same => n,Set(DB(labring/${{LABID}})=${{ATTEMPT}})
 same => n,Set(RINGLIST=${{IF(${{EXISTS(${{RINGS}})}}?${{RINGS}}:1)}})
 same => n,Set(NRINGS=${{FIELDQTY(RINGLIST,/)}})
 same => n,Set(RING=${{CUT(RINGLIST,/,${{IF($[${{ATTEMPT}} > ${{NRINGS}}]?${{NRINGS}}:${{ATTEMPT}})}})}})
 same => n,Wait(${{RING}})
 same => n,Answer()
 same => n,GotoIf($["${{CLASSIFY}}" = ""]?xfer)
 ; CLASSIFY: the call taker presses a classification feature code during the call.
 same => n,Wait(0.5)
 same => n,SendDTMF(${{CLASSIFY}})
 same => n(xfer),GotoIf($["${{XFER}}" = ""]?talk)
 ; XFER=blind|attended: the call taker transfers the caller to AGENCY with the phone's
 ; feature codes (blind #1, attended *2), as DTMF through the bridge.
 same => n,Wait(1)
 same => n,SendDTMF(${{IF($["${{XFER}}" = "blind"]?#1:*2)}})
 same => n,Wait(1)
 same => n,SendDTMF(${{AGENCY}}#)
 same => n(talk),Wait(${{IF(${{EXISTS(${{TALK}})}}?${{TALK}}:1)}})
 same => n,Hangup()
 ; POSTCLASS: the same phone, after the call, dials its classification code.
 same => n(postclass),Answer()
 same => n,Gosub(pbxbridge,classify,1(${{POSTCLASS}}))
 same => n,Hangup()

[{AGENCY_CONTEXT}]
; Agency numbers (110 police, 113 fire, 115 SAR, 118/119 ambulance) answer and talk.
exten => _11X,1,Answer()
 same => n,Wait(${{IF(${{EXISTS(${{AGENCY_TALK}})}}?${{AGENCY_TALK}}:8)}})
 same => n,Hangup()

[{CALLEE_CONTEXT}]
; Numbers a callback dials: 0899... never answers, anything else answers and talks 1 s.
exten => _0899X.,1,Wait(30)
exten => _08X.,1,Answer()
 same => n,Wait(1)
 same => n,Hangup()

[{INTERNAL_CONTEXT}]
; Internal, non-emergency extensions: never reported by pbxbridge.
exten => _2XXX,1,Answer()
 same => n,Wait(${{IF(${{EXISTS(${{TALK}})}}?${{TALK}}:1)}})
 same => n,Hangup()
"""


def features_conf() -> str:
    # Transfer feature codes: AMI's Atxfer action needs an attended-transfer code to
    # exist, exactly as a call taker's phone does.
    return """[general]
atxfernoanswertimeout = 15
transferdigittimeout = 3

[featuremap]
blindxfer = #1
atxfer = *2

[applicationmap]
; A call taker classifies the call during it: the feature runs on the call taker's
; channel, which shares the caller's Linkedid (enabled per member in lab-member).
pbx_emergency => *70,self,Gosub(pbxbridge,classify,1(emergency))
pbx_prank => *71,self,Gosub(pbxbridge,classify,1(prank))
pbx_ghost => *72,self,Gosub(pbxbridge,classify,1(ghost))
"""


# Prompts Asterisk plays during a transfer; the lab has no sound packages, so they
# are written as short silence (8 kHz signed linear).
SILENT_PROMPTS = ("pbx-transfer", "beep", "pbx-invalid", "pbxbridge-callback-unavailable")


def all_files(s: LabSettings) -> dict[str, str]:
    """Every file of the lab's etc directory, by name."""
    return {
        "asterisk.conf": asterisk_conf(s),
        "modules.conf": modules_conf(),
        "manager.conf": manager_conf(s),
        "logger.conf": logger_conf(),
        "queues.conf": queues_conf(),
        "extensions.conf": extensions_conf(),
        "musiconhold.conf": "[general]\n",
        "features.conf": features_conf(),
        "asterisk.adsi": "",
    }
