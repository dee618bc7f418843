"""The scripted driver's closed vocabulary: what it takes for a request, in agents' own
words — and what it must not (a correct agent that says "you don't need to unplug" must not
have its driver pull the cable out of a charging car)."""

from __future__ import annotations

import pytest

from libv4e_apps.eval.driver import _requests


@pytest.mark.parametrize(
    ("said", "asks"),
    [
        # requests, phrased as agents phrase them
        ("please try to unplug the cable now.", ["unplug"]),
        ("please try unplugging the cable now.", ["unplug"]),
        ("could you remove the cable from the car?", ["unplug"]),
        ("please disconnect your car now.", ["unplug"]),
        ("you can pull the plug out now.", ["unplug"]),
        ("please tap your charging card on the reader.", ["present_card"]),
        ("could you swipe your rfid card again?", ["present_card"]),
        ("please plug the car back in.", ["plug_in"]),
        ("what connector are you using?", ["connector"]),
        ("what does the display show?", ["screen"]),
        ("what does the app say?", ["car"]),
        ("if it still doesn't work, unplug the cable.", ["unplug"]),
        ("try pulling the cable out now.", ["unplug"]),
        ("please try removing the plug.", ["unplug"]),
        ("try disconnecting your car now.", ["unplug"]),
        ("could you try tapping your card again?", ["present_card"]),
        ("try scanning your card.", ["present_card"]),
        ("try swiping the card.", ["present_card"]),
        # not requests
        ("you don't need to unplug anything.", []),
        ("please don't try to unplug yet, i'm restarting it.", []),
        ("you won't need to tap your card.", []),
        ("there's no need to unplug.", []),
        ("please try not to unplug it yet.", []),
        ("before you unplug, let me release the lock.", []),
        ("is your car unplugged?", []),
        ("i don't need your card number, thanks.", []),
        ("you won't have to read the screen.", []),
        ("i don't need the charger id anymore.", []),
        ("it's not charging, so please check the screen.", ["screen"]),
        ("the charger had a screening fault; it's fixed.", []),
        ("i have 13 tools available.", []),
    ],
)
def test_the_driver_hears_requests_and_not_their_negations(said, asks):
    assert _requests(said) == asks


@pytest.mark.parametrize(
    ("said", "asks"),
    [
        ("please plug your cable into connector 2 first, then tell me.", ["plug_in"]),
        ("please plug it into connector 1.", ["plug_in"]),
        ("please plug in.", ["plug_in"]),
        ("which connector did you plug into?", ["connector"]),
        ("which connector number are you plugged into?", ["connector"]),
    ],
)
def test_plugging_in_with_and_without_an_object(said, asks):
    assert _requests(said) == asks


@pytest.mark.parametrize(
    "closing",
    [
        "Is there anything else I can help you with?",
        "Your car is full, nothing to fix. Anything else?",
        "Can I help you with something else today?",
    ],
)
def test_an_informed_driver_answers_a_closing_question_by_hanging_up(closing):
    """A polite "anything else?" is not a question the driver should answer with "can you
    just fix it?" — that pushes a correct agent into acting on a car that is full."""
    import random

    import trio

    from libv4e_apps.eval.driver import ScriptedDriver
    from libv4e_apps.eval.tasks import load_tasks

    task = next(t for t in load_tasks() if t.id == "not_to_act/car-full")
    driver = ScriptedDriver(task, random.Random(0), tools=None)  # informed: no tool needed
    turn = trio.run(driver.reply, closing)
    assert turn.stop == "done", turn.text
    assert "fix" not in turn.text
