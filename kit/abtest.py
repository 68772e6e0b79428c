"""The A/B test (step 7 of the method): candidate vs control, 7 days, in the world; and its analysis, which
reads the same event log a real test would produce (kit/data.py's A/B contract).

Simulation
* assignment by a stable hash of (salt, user id): `share` of the population to each arm, the rest not in the test;
* an assigned user is exposed on the first day they are active; a user is active on a day with probability
  sigmoid(return_bias + return_habit + return_weight * experience), where experience is the mean utility of
  their last day's session, halving each idle day (the world's p(return));
* an active user's session: a character by their taste, then turns; after each reply the user continues with
  the world's p(continue) of their hidden utility for that reply;
* replies come from the arms' real models, generated in batches up front for a pool of prompts per character
  and cached, so a week of simulated traffic costs a few hundred generations: a user is served a cached reply
  to a prompt drawn from the pool, their own utility decides what happens next.

Metrics (the paper does not define its own; these are ours)
* breadth: the share of exposed users active on a day, averaged over the days of the test;
* depth: user messages per active user-day.
Lifts are treatment / control - 1, with 95 % intervals from a user-level bootstrap (users resampled within
each arm, which keeps each user's days together); the sample-ratio-mismatch check is a chi-square test of
exposed users per arm against the designed split.

In a real test every user gets fresh replies, so the user-level bootstrap holds all the noise. The simulation
serves every user from a small cache of replies per arm, so its lift is conditional on those few replies: a
cache that happened to draw a good reply for one arm moves every user of that arm together, and the user-level
interval leaves that out. `reply_noise` measures it: the week is simulated again on caches resampled per
character (with replacement), with fresh user randomness each time, and the spread of those lifts is the
sampling error of the whole procedure. The simulated test reports the wider of the two intervals.
"""
from __future__ import annotations

import numpy as np

from .data import ARMS  # the arms of the A/B contract
from .errors import KitError, ParameterError
from .seeding import rng, stable_hash
from .world.traffic import favourite_category


# ---------------------------------------------------------------------------------------------- assignment
def assign(user_ids: list[str], salt: str, share: float = 0.1) -> dict[str, str]:
    """user id -> arm, for users in the test (others are left out). The same salt gives the same split."""
    if not 0 < share <= 0.5:
        raise KitError(f"A/B share per arm must be in (0, 0.5], got {share}")
    out = {}
    for uid in user_ids:
        b = stable_hash(f"{salt}:{uid}", 10_000) / 10_000
        if b < share:
            out[uid] = "control"
        elif b < 2 * share:
            out[uid] = "treatment"
    return out


# ---------------------------------------------------------------------------------------------- reply cache
def prompt_pool(world, per_card: int, seed: int, max_turns: int = 3) -> list[dict]:
    """Prompts per character, openings and later turns alike: {"character_id", "turn", "user_name", "history"}."""
    from .world.prompts import user_message

    p = world.params
    r = rng(seed, "ab-prompt-pool")
    pool = []
    names = world.population.names
    for cid in sorted(world.cards):
        card = world.cards[cid]
        for k in range(per_card):
            turn = k % max_turns
            seg = world.population.segments[int(r.integers(len(names)))]
            name = names[int(r.integers(len(names)))]
            msg = user_message(card, seg, turn, r, user_name=name, pii_rate=0.0, typo_rate=p.typo_rate,
                               unsafe_rate=p.unsafe_rate)
            pool.append({"character_id": cid, "turn": turn, "user_name": name, "unsafe": msg["unsafe"],
                         "history": [{"role": "user", "content": msg["content"]}], "user_message": msg["content"]})
    return pool


def cache_replies(world, pool: list[dict], policies: dict, *, samples: int, seed: int, cache=None) -> dict:
    """arm -> {"replies": [[str] * samples per prompt], "measured": DataFrame (prompt-major, sample-minor)}.

    Both arms sample with the same seeds (common random numbers: a difference between the arms comes from their
    weights, not from luck of the draw), through kit.evaluation.generate_for, so with `cache` (Run.reply_cache())
    a policy's replies to the pool are generated once in a run: the control arm is the deployed policy, whose
    replies were made when it was the treatment."""
    from .evaluation import generate_for
    from .seeding import derive

    flat = {arm: [] for arm in policies}
    for s in range(samples):
        for arm, replies in generate_for(policies, world.cards, pool, seed=derive(seed, "ab", s), cache=cache).items():
            flat[arm].append(replies)
    out = {}
    for arm in policies:
        replies = [[flat[arm][s][i] for s in range(samples)] for i in range(len(pool))]
        items = [dict(pool[i], reply=replies[i][s]) for i in range(len(pool)) for s in range(samples)]
        out[arm] = {"replies": replies, "measured": world.measure(items)}
    return out


# ---------------------------------------------------------------------------------------------- simulation
def _by_card(pool: list[dict]) -> dict[str, list[int]]:
    """character id -> the indices of its prompts in the pool."""
    out: dict[str, list[int]] = {}
    for j, it in enumerate(pool):
        out.setdefault(it["character_id"], []).append(j)
    return out


def simulate(world, cache: dict, pool: list[dict], assignment: dict[str, str], *, days: int = 7, seed: int = 0,
             max_turns: int = 6) -> list[dict]:
    """A week of the test. Returns the event log: exposure and message events (kit/data.py A/B contract)."""
    from .stats import sigmoid
    from .world.users import signal_probabilities, utility

    p = world.params
    pop = world.population
    index = {uid: i for i, uid in enumerate(pop.user_ids)}
    users = sorted(assignment, key=lambda u: index[u])
    if not users:
        raise KitError("A/B: no users assigned to either arm")
    samples = len(next(iter(cache.values()))["replies"][0])
    by_card = _by_card(pool)
    cards_by_cat: dict[str, list[str]] = {}
    for cid in sorted(world.cards):
        cards_by_cat.setdefault(world.cards[cid].category, []).append(cid)
    prefs_all = world.prefs_for(users)
    habit = prefs_all["return_habit"]
    experience = np.zeros(len(users))
    exposed = np.zeros(len(users), dtype=bool)
    events = []
    r = rng(seed, "ab-simulate")
    for day in range(days):
        p_active = sigmoid(p.return_bias + habit + p.return_weight * experience)
        active = np.flatnonzero(r.random(len(users)) < p_active)
        experience *= 0.5
        # sessions of every active user advance turn by turn together
        cards = []
        for k in active:
            cat = favourite_category(pop.favourite_categories[index[users[k]]], cards_by_cat, r)
            cards.append(cards_by_cat[cat][int(r.integers(len(cards_by_cat[cat])))])
        totals = np.zeros(len(active))
        n_msgs = np.zeros(len(active), dtype=int)
        alive = np.ones(len(active), dtype=bool)
        for turn in range(max_turns):
            idx = np.flatnonzero(alive)
            if not len(idx):
                break
            rows, arms = [], []
            for a in idx:
                k = active[a]
                arm = assignment[users[k]]
                j = by_card[cards[a]][int(r.integers(len(by_card[cards[a]])))]
                rows.append(j * samples + int(r.integers(samples)))
                arms.append(arm)
                n_msgs[a] += 1
            u = np.zeros(len(idx))
            for arm in ARMS:
                sel = [n for n, x in enumerate(arms) if x == arm]
                if not sel:
                    continue
                measured = cache[arm]["measured"].iloc[[rows[n] for n in sel]].reset_index(drop=True)
                prefs = {key: v[active[idx[sel]]] for key, v in prefs_all.items()}
                u[sel] = utility(measured, prefs, p)
            totals[idx] += u
            cont = r.random(len(idx)) < signal_probabilities(u, p)["continue"]
            alive[idx] = cont
        for a, k in enumerate(active):
            uid, arm = users[k], assignment[users[k]]
            if not exposed[k]:
                exposed[k] = True
                events.append({"type": "exposure", "user_id": uid, "arm": arm, "day": day})
            events.extend({"type": "message", "user_id": uid, "arm": arm, "day": day} for _ in range(n_msgs[a]))
            experience[k] = totals[a] / max(1, n_msgs[a])
    return events


# ---------------------------------------------------------------------------------------------- analysis
def import_log(path, arms: dict | None = None) -> list[dict]:
    """A real A/B log (`ab_log_path` of notebook 07) in the contract (kit.data.load_ab_log: arm names mapped by
    `arms`, timestamps counted in days), with every field but the ids redacted and scanned: the notebook writes its
    events to the run directory."""
    from .data import load_ab_log
    from .privacy import assert_no_pii, redact_records

    events, _ = redact_records(load_ab_log(path, arms))
    assert_no_pii(events, str(path))
    return events


def user_table(events: list[dict], days: int | None = None):
    """One row per exposed user: arm, active days, messages. Checks that each user stays in one arm."""
    import pandas as pd

    if not events:
        raise KitError("A/B analysis: the event log is empty")
    arm_of: dict[str, str] = {}
    active: dict[str, set] = {}
    msgs: dict[str, int] = {}
    for n, e in enumerate(events):
        uid = e["user_id"]
        if arm_of.setdefault(uid, e["arm"]) != e["arm"]:
            raise KitError(f"A/B event {n}: user {uid} appears in both arms")
        if e["type"] == "exposure":
            active.setdefault(uid, set())
        else:
            active.setdefault(uid, set()).add(e["day"])
            msgs[uid] = msgs.get(uid, 0) + 1
    exposed = list(arm_of)   # a message without an exposure event still means the user saw the arm
    n_days = days or (max(e["day"] for e in events) + 1)
    return pd.DataFrame({"user_id": exposed, "arm": [arm_of[u] for u in exposed],
                         "active_days": [len(active[u]) for u in exposed],
                         "messages": [msgs.get(u, 0) for u in exposed]}).assign(days=n_days)


def _metrics(active_days: np.ndarray, messages: np.ndarray, days: int) -> tuple[float, float]:
    breadth = active_days.sum() / (len(active_days) * days) if len(active_days) else float("nan")
    depth = messages.sum() / active_days.sum() if active_days.sum() else float("nan")
    return float(breadth), float(depth)


def _arm_metrics(table, days: int) -> dict[str, tuple[float, float]]:
    """arm -> (breadth, depth) over a user table's rows of that arm."""
    return {a: _metrics(table.loc[table["arm"] == a, "active_days"].to_numpy(),
                        table.loc[table["arm"] == a, "messages"].to_numpy(), days) for a in ARMS}


def designed_split(split) -> tuple[float, float]:
    """The share of users each arm was designed to get, (control, treatment): from a pair or an object
    {"control": 0.9, "treatment": 0.1}. A 90/10 test's exposure counts are no sample-ratio mismatch."""
    if isinstance(split, dict):
        if set(split) != set(ARMS):
            raise ParameterError("ab_split", "an object with the shares of control and treatment", split)
        split = (split["control"], split["treatment"])
    if not isinstance(split, (list, tuple)) or len(split) != 2 or \
            not all(type(v) in (int, float) and 0 < v < float("inf") for v in split):
        raise ParameterError("ab_split", "two positive shares, control then treatment (e.g. {\"control\": 0.9, "
                             "\"treatment\": 0.1})", split)
    return float(split[0]), float(split[1])


def analyse(events: list[dict], *, days: int | None = None, share=(0.5, 0.5), n_boot: int = 2000,
            seed: int = 0) -> dict:
    """breadth and depth per arm, % lift with a 95 % user-level bootstrap interval, SRM p-value against the
    designed split `share` (`designed_split`), MDE."""
    from scipy.stats import chisquare, norm

    share = designed_split(share)
    table = user_table(events, days)
    n_days = int(table["days"].iloc[0])
    arms = {a: table[table["arm"] == a] for a in ARMS}
    for a in ARMS:
        if arms[a].empty:
            raise KitError(f"A/B analysis: no exposed users in the {a} arm")
    point = _arm_metrics(table, n_days)
    r = rng(seed, "ab-bootstrap")
    boots = {a: [] for a in ARMS}
    for a in ARMS:
        d, m = arms[a]["active_days"].to_numpy(), arms[a]["messages"].to_numpy()
        idx = r.integers(0, len(d), size=(n_boot, len(d)))
        bd, bm = d[idx].sum(axis=1), m[idx].sum(axis=1)
        boots[a] = (bd / (len(d) * n_days), np.divide(bm, bd, out=np.full(n_boot, np.nan), where=bd > 0))
    counts = [len(arms[a]) for a in ARMS]
    expected = np.array(share) / sum(share) * sum(counts)
    srm_p = float(chisquare(counts, expected).pvalue)
    z = norm.ppf(0.975) + norm.ppf(0.8)
    out = {"days": n_days, "exposed": dict(zip(ARMS, counts)), "srm_p_value": srm_p,
           "definitions": {"breadth": "share of exposed users active on a day, averaged over the days of the test",
                           "depth": "user messages per active user-day"}}
    for k, name in enumerate(("breadth", "depth")):
        c, t = point["control"][k], point["treatment"][k]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = boots["treatment"][k] / boots["control"][k] - 1
        ratio = ratio[np.isfinite(ratio)]
        se = float(np.nanstd(boots["treatment"][k] - boots["control"][k]))
        out[name] = {"control": c, "treatment": t, "lift": t / c - 1 if c else float("nan"),
                     "ci95": [float(np.quantile(ratio, 0.025)), float(np.quantile(ratio, 0.975))],
                     "mde": float(z * se / c) if c else float("nan")}
    out["srm"] = "ok" if srm_p >= 0.001 else "MISMATCH: exposure counts deviate from the designed split"
    return out


def resampled_rows(pool: list[dict], samples: int, r) -> np.ndarray:
    """Cache rows (prompt-major, sample-minor) redrawn with replacement within each character."""
    rows = np.empty(len(pool) * samples, dtype=int)
    for js in _by_card(pool).values():
        own = np.array([j * samples + s for j in js for s in range(samples)])
        rows[own] = r.choice(own, size=len(own), replace=True)
    return rows


def _resampled_cache(cache: dict, pool: list[dict], r) -> dict:
    out = {}
    for arm, entry in cache.items():
        rows = resampled_rows(pool, len(entry["replies"][0]), r)
        out[arm] = {"replies": entry["replies"], "measured": entry["measured"].iloc[rows].reset_index(drop=True)}
    return out


def reply_noise(result: dict, world, cache: dict, pool: list[dict], assignment: dict[str, str], *, days: int,
                seed: int, max_turns: int, n_sims: int = 30) -> dict:
    """Widen a simulated test's intervals by the noise of its reply cache (see the module note).

    Simulates the week `n_sims` more times, each on a cache resampled within characters and with its own user
    randomness; the standard deviation of those lifts is the procedure's total sampling error. Each metric's
    `ci95` becomes the wider of the user-level interval and lift +- 1.96 of that error; `ci95_users` keeps the
    user-level one, and `mde` is recomputed from the larger error. Returns a new result."""
    from scipy.stats import norm

    if n_sims < 2:
        return dict(result, reply_noise={"n_sims": 0})
    r = rng(seed, "ab-reply-noise")
    lifts = {"breadth": [], "depth": []}
    for _ in range(n_sims):
        events = simulate(world, _resampled_cache(cache, pool, r), pool, assignment, days=days,
                          seed=int(r.integers(2**31)), max_turns=max_turns)
        point = _arm_metrics(user_table(events, days), days)
        for k, name in enumerate(lifts):
            lifts[name].append(point["treatment"][k] / point["control"][k] - 1)
    out = dict(result)
    z = norm.ppf(0.975)
    for name, values in lifts.items():
        m = dict(result[name])
        sd = float(np.std(values, ddof=1))
        lo, hi = float(m["lift"] - z * sd), float(m["lift"] + z * sd)
        m["ci95_users"] = list(m["ci95"])
        m["ci95"] = [min(lo, m["ci95"][0]), max(hi, m["ci95"][1])]
        m["lift_sd_resimulated"] = sd
        if m["control"]:
            m["mde"] = max(m["mde"], float((z + norm.ppf(0.8)) * sd))
        out[name] = m
    out["reply_noise"] = {"n_sims": n_sims, "method": "week re-simulated on reply caches resampled within "
                                                      "characters, fresh user randomness each time"}
    return out


def daily(events: list[dict]):
    """Per day and arm: active users, messages, breadth (of users exposed by then) and depth."""
    import pandas as pd

    frame = pd.DataFrame(events)
    first = frame[frame["type"] == "exposure"].groupby("user_id")["day"].min()
    rows = []
    for day in range(int(frame["day"].max()) + 1):
        for arm in ARMS:
            sub = frame[(frame["day"] == day) & (frame["arm"] == arm) & (frame["type"] == "message")]
            exposed_by = int(((frame["type"] == "exposure") & (frame["arm"] == arm)
                              & frame["user_id"].map(first).le(day)).sum())
            act = sub["user_id"].nunique()
            rows.append({"day": day, "arm": arm, "active": act, "messages": len(sub),
                         "breadth": act / exposed_by if exposed_by else float("nan"),
                         "depth": len(sub) / act if act else float("nan")})
    return pd.DataFrame(rows)
