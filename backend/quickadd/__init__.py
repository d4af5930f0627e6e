"""Quick add: a line a person types (`Buy milk tomorrow 5pm @errands #Home !high`) read into
a task, deterministically and without the database: the service looks up the names the line
types (`names_in`, one round trip) and reads it against them (`read`).

The grammar (English, words case-insensitive; the tests are its examples):

- A token starts a word (text start, whitespace or an opening bracket) and ends at the end of
  one (trailing `,.;:!?` and closing brackets stay in the title), so a word is never partly
  read: an email `a@b.com`, `C#`, `a+b`, Mark, Julian or monitor stay text.
- `#list` / `#"two words"` (known lists only; the last wins), `@tag` / `@"two words"`,
  `!high|medium|low|none` / `!1..!3` (the last wins), `+handle` (a member of the task's final
  list, or of the caller's own space without one). An unknown name stays in the title.
- Dates: today, tonight (21:00), tomorrow, weekdays (the next one after today; `next`/`this`
  before one changes nothing), next week (its Monday), next month (its 1st), end of month,
  in a|N day(s)/week(s)/month(s)/year(s), on|by|due [the] 5th, Dec 5 / 5 Dec / December 5th /
  the 5th of May, 2026-12-05. A month alone, a bare number or ordinal is text.
- Times: [at] 5pm, 5 pm, 5:30pm, 17:00, noon, midnight. A date and a time next to each other
  are one `due` token; apart, each is a `due` token and both carry the combined due.
- Recurrence: daily/weekly/monthly/yearly, every [other|N] day/week/month/year, every
  weekday/weekend, every [other] mon[, tue] [and thu], every month on the 15th, every week on
  mon and thu. Its first due is the date typed, else its first day on or after today.
- `"..."` is literal text: never read, its quote marks dropped from the title.

Where the grammar could go either way: `next friday` is `friday`; `midnight` is 00:00 (with
a date, that day's start); a date phrase takes the time beside it only while no time was read
(else that time is title text); the series' start is the first day on or after today its
pattern has (an INTERVAL counts from there; with a time already past today, the series' next
occurrence); tags are kept once each (casefolded), assignees once each; a quoted name's
inner whitespace collapses. `ignore` works on the one pass: a phrase starting at an ignored
offset is title text as a whole, so ignoring the first date makes the next one the due.
"""

from backend.quickadd.model import Directory, Names, QuickAddError, Reading, Token
from backend.quickadd.reader import names_in, read

__all__ = ["Directory", "Names", "QuickAddError", "Reading", "Token", "names_in", "read"]
