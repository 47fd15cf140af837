"""``vm2mail fallback-twiml --number N``: static TwiML for the Twilio number's fallback URL (gateway down)."""

from __future__ import annotations

import argparse
import sys

from twilio.twiml.voice_response import VoiceResponse

from vm2mail.cli.common import OK, PROBLEMS, Subparsers, command, load_unchecked
from vm2mail.config.model import Config
from vm2mail.telephony import prompts
from vm2mail.telephony.twiml import RECORD_SILENCE_TIMEOUT

# <Record> without an action requests the current document again when it ends
# (https://www.twilio.com/docs/voice/twiml/record#action): for a TwiML Bin that would replay the
# greeting. The action must hang up instead; Twilio's echo Twimlet serves any TwiML from its query.
HANGUP_URL = "https://twimlets.com/echo?Twiml=%3CResponse%3E%3CHangup%2F%3E%3C%2FResponse%3E"


def fallback_twiml(config: Config, number: str, hangup_url: str = HANGUP_URL) -> str:
    """Greeting, beep, ``<Record>``: the recording stays at Twilio until ``vm2mail reconcile`` fetches it.

    No recordingStatusCallback: the gateway is down when this runs. ``reconcile`` finds the recording
    in the account and maps it to the mailbox by the number its call dialled.
    """
    mailbox = config.mailbox_for_number(number)
    if mailbox is None:
        raise ValueError(f"{number} is not a number of any mailbox")
    greeting = prompts.mailbox_prompt(config, mailbox, prompts.GREETING, called=number, caller=None)
    response = VoiceResponse()
    response.say(greeting.text, language=greeting.language)
    response.record(
        action=hangup_url,
        method="GET",
        max_length=mailbox.max_message_seconds,
        play_beep=True,
        timeout=RECORD_SILENCE_TIMEOUT,
        finish_on_key="#",
        trim="trim-silence",
    )
    response.hangup()
    return str(response.to_xml(xml_declaration=True))


def cmd_fallback_twiml(args: argparse.Namespace) -> int:
    config = load_unchecked(args.config)
    try:
        print(fallback_twiml(config, args.number, args.hangup_url))
    except ValueError as exc:
        print(f"vm2mail: --number: {exc}", file=sys.stderr)
        return PROBLEMS
    return OK


def register(sub: Subparsers) -> None:
    cmd = command(
        sub,
        "fallback-twiml",
        "print static TwiML for a number's fallback URL (a TwiML Bin): records while the gateway is down",
        cmd_fallback_twiml,
    )
    cmd.add_argument("--number", required=True, help="the Twilio number (E.164) of the mailbox")
    cmd.add_argument(
        "--hangup-url",
        default=HANGUP_URL,
        help="TwiML that hangs up after the recording (default: Twimlet echo)",
    )
