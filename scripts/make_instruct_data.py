"""Write the data of suites/smollm2-instruct.yaml (deterministic; rerun to regenerate the same files).

- suites/data/instruct-dates.jsonl: the task to learn. Conversational training rows (`messages`: a user
  asks for an ISO date in DD/MM/YYYY, the assistant answers it) and generative evaluation rows whose
  context is the user turn (rendered with the model's chat template), answer the reformatted date.
- suites/data/instruct-arithmetic.jsonl: a retained skill in conversational prompt-completion rows
  (`prompt`/`completion` message lists) and generative evaluation rows: one-digit sums, answered in chat.
- suites/data/instruct-dates-preference.jsonl: conversational preference pairs with an explicit prompt:
  chosen = the DD/MM/YYYY answer, rejected = the month-first (MM/DD/YYYY) answer.
Evaluation dates never appear in training rows or pairs (years 2030-2039 are evaluation only).

And the data of suites/smollm2-instruct-pc.yaml (written after the above, from its own random stream, so
the files above do not change):
- suites/data/instruct-date-words.jsonl: the task to learn, in conversational prompt-completion rows (a
  user asks for an ISO date in words, day first; the completion is the assistant's "14 September 2021")
  and generative evaluation rows with message contexts.
- suites/data/instruct-date-words-preference.jsonl: conversational preference pairs with an implicit
  prompt (`chosen`/`rejected` are whole conversations that share the user turn): chosen "14 September
  2021", rejected "September 14, 2021".
"""

from __future__ import annotations

import calendar
import json
import random
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent / "suites" / "data"


def _date(rng: random.Random, years: range) -> tuple[str, str, str]:
    year, month, day = rng.choice(years), rng.randint(1, 12), rng.randint(1, 28)
    return f"{year}-{month:02d}-{day:02d}", f"{day:02d}/{month:02d}/{year}", f"{month:02d}/{day:02d}/{year}"


def _ask(iso: str) -> dict[str, str]:
    return {"role": "user", "content": f"Rewrite the date {iso} in the format DD/MM/YYYY. Reply with the date only."}


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def main() -> None:
    rng = random.Random(25)
    train_years, eval_years = range(1990, 2030), range(2030, 2040)
    seen: set[str] = set()

    def fresh(years: range) -> tuple[str, str, str]:
        while True:
            iso, dmy, mdy = _date(rng, years)
            if iso not in seen and dmy != mdy:
                seen.add(iso)
                return iso, dmy, mdy

    dates = []
    for _ in range(240):
        iso, dmy, _ = fresh(train_years)
        dates.append({"messages": [_ask(iso), {"role": "assistant", "content": dmy}]})
    for number in range(48):
        iso, dmy, _ = fresh(eval_years)
        dates.append({"context": [_ask(iso)], "answer": dmy, "id": f"dates/{number}"})
    _write(DATA / "instruct-dates.jsonl", dates)

    pairs = []
    for _ in range(200):
        iso, dmy, mdy = fresh(train_years)
        answer = {"role": "assistant", "content": dmy}
        pairs.append({"prompt": [_ask(iso)], "chosen": [answer], "rejected": [{"role": "assistant", "content": mdy}]})
    _write(DATA / "instruct-dates-preference.jsonl", pairs)

    sums = [(a, b) for a in range(10) for b in range(10)]
    rng.shuffle(sums)
    arithmetic = []
    for a, b in sums[:40]:
        prompt = [{"role": "user", "content": f"What is {a} + {b}? Reply with the number only."}]
        arithmetic.append({"prompt": prompt, "completion": [{"role": "assistant", "content": str(a + b)}]})
    for a, b in sums[40:80]:
        context = [{"role": "user", "content": f"What is {a} + {b}? Reply with the number only."}]
        arithmetic.append({"context": context, "answer": str(a + b), "id": f"sum/{a}+{b}"})
    _write(DATA / "instruct-arithmetic.jsonl", arithmetic)
    _write_date_words(random.Random(2525))


def _ask_words(iso: str) -> dict[str, str]:
    return {"role": "user", "content": f"Write the date {iso} in words, day first. Reply with the date only."}


def _write_date_words(rng: random.Random) -> None:
    seen: set[str] = set()

    def fresh(years: range) -> tuple[str, str, str]:
        while True:
            year, month, day = rng.choice(years), rng.randint(1, 12), rng.randint(1, 28)
            iso = f"{year}-{month:02d}-{day:02d}"
            if iso not in seen:
                seen.add(iso)
                name = calendar.month_name[month]
                return iso, f"{day} {name} {year}", f"{name} {day}, {year}"

    rows: list[dict] = []
    for _ in range(200):
        iso, words, _ = fresh(range(1990, 2030))
        rows.append({"prompt": [_ask_words(iso)], "completion": [{"role": "assistant", "content": words}]})
    for number in range(48):
        iso, words, _ = fresh(range(2030, 2040))
        rows.append({"context": [_ask_words(iso)], "answer": words, "id": f"date-words/{number}"})
    _write(DATA / "instruct-date-words.jsonl", rows)
    pairs = []
    for _ in range(160):
        iso, words, us_style = fresh(range(1990, 2030))
        ask = _ask_words(iso)
        chosen, rejected = (
            [ask, {"role": "assistant", "content": words}],
            [ask, {"role": "assistant", "content": us_style}],
        )
        pairs.append({"chosen": chosen, "rejected": rejected})
    _write(DATA / "instruct-date-words-preference.jsonl", pairs)


if __name__ == "__main__":
    main()
