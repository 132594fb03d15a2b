"""The benchmark's Tier C: the LLM's answer it serves, the job it submits, and the figures computed from a run."""

from __future__ import annotations

from bench.peers import LLM_REPLY, LlmKnobs, tier_c_ratios
from bench.scenarios.llm_bound import READY, PeakRss, check_calls, job_item, stack_env, window_end
from sitewright_gateway.web.schemas import JobCreate
from sitewright_generator.config import GeneratorSettings
from sitewright_generator.output_format import SECTIONS
from sitewright_generator.parse import parse_output
from sitewright_runtime.settings import load_settings

FAKES = "http://127.0.0.1:8089"


def test_the_llm_reply_is_a_valid_answer_in_sitewrights_format_of_about_2_kb():
    text = LLM_REPLY.read_text()
    assert 1500 <= len(text.encode()) <= 3000  # the peers' built-in reply is about 2 KB
    result = parse_output(text)
    assert len(result.content) >= SECTIONS[0] and len(result.faq) >= 3
    assert result.meta.title.startswith("Alder Street Bakery")
    assert result.schema_["@type"] == "Bakery"


def test_a_job_crawls_the_peers_pages_and_calls_the_fakes_webhook():
    job = JobCreate.model_validate(job_item(FAKES, 5))
    assert job.url == f"{FAKES}/site/"
    assert (job.options.max_pages, job.options.max_depth) == (6, 1)  # the root and its 5 linked pages
    assert [(t.channel, t.target) for t in job.notify] == [("webhook", f"{FAKES}/hook")]


def test_the_generator_uses_the_fake_llm_and_keeps_its_default_concurrency(monkeypatch):
    for name, value in stack_env(FAKES).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SITEWRIGHT_GENERATOR_CONCURRENCY", raising=False)
    settings = load_settings(GeneratorSettings, kafka_bootstrap="k:1", mongo_url="mongodb://m", env="local")
    assert settings.generator_provider == "openai" and settings.base_url == f"{FAKES}/v1" and settings.api_key
    assert settings.generator_concurrency == GeneratorSettings.model_fields["generator_concurrency"].default
    assert not any(k in stack_env(FAKES) for k in ("SITEWRIGHT_GENERATOR_CONCURRENCY", "SITEWRIGHT_MAX_IN_FLIGHT"))


def test_the_knobs_are_the_peers_defaults_and_go_to_both_sides_as_the_same_flags(monkeypatch):
    knobs = LlmKnobs()
    args = knobs.args()
    flags = dict(zip(args[::2], args[1::2]))
    assert flags == {
        "--site-pages": "5",
        "--page-delay-ms": "50",
        "--llm-latency-s": "3",
        "--llm-chunks": "20",
        "--llm-reply": str(LLM_REPLY.resolve()),
    }
    monkeypatch.setenv("BENCH_LLM_LATENCY_S", "1.5")
    assert LlmKnobs().llm_latency_s == 1.5
    assert READY.search("setup: nothing to do\nREADY http://127.0.0.1:41234\n")[1] == "http://127.0.0.1:41234"


def test_the_honesty_check_names_every_call_short_and_counts_robots_and_sitemap_apart():
    stats = {"page_gets": 1200, "robots_gets": 1, "sitemap_gets": 200, "llm_completed": 200, "hook_posts": 200}
    got = check_calls(stats | {"llm_peak_in_flight": 150}, 200, 5)
    assert got["calls_required"] == {"page_gets": 1200, "llm_completed": 200, "hook_posts": 200}
    assert "calls_short" not in got and got["llm_peak_in_flight"] == 150
    assert got["fakes_stats"]["sitemap_gets"] == 200  # reported, not counted as pages
    short = check_calls(stats | {"page_gets": 1199, "hook_posts": 150}, 200, 5)
    assert short["calls_short"] == {"page_gets": "1199/1200", "hook_posts": "150/200"}


def test_the_window_ends_at_the_later_of_the_last_completion_and_the_last_webhook():
    assert window_end(100.0, 100.4, 100.5) == (100.4, "webhook delivered (deliveries.finished_at)")
    assert window_end(100.0, 99.9, 100.5) == (100.0, "read model")
    # Without every delivery's time, the poll that first saw every webhook at the fakes.
    assert window_end(100.0, None, 100.5) == (100.5, "webhooks counted (poll of the fakes' /stats)")
    assert window_end(100.0, None, None) == (100.0, "read model")


def test_peak_rss_keeps_each_process_peak_and_the_peak_of_their_sum():
    peak = PeakRss()
    peak.add({"gateway": 80.0, "crawler": 90.0, "prometheus": 500.0})
    peak.add({"gateway": 100.0, "crawler": 60.0, "notifier": None})
    assert peak.peak == {"gateway": 100.0, "crawler": 90.0, "total": 170.0}


def peer(system: str, config: str, jobs_per_s: float, status: str = "ok", peak: int = 500) -> dict:
    return {
        "system": system,
        "config": config,
        "scenario": "throughput",
        "jobs_per_s": jobs_per_s,
        "status": status,
        "llm_peak_in_flight": peak,
        "peak_rss_mib": {"workers": 300.0, "redis": 10.0, "producer": 50.0, "fakes": 40.0},
    }


def ours(jobs_per_s: float, complete: bool = True, peak: int = 400) -> dict:
    rss = {"gateway": 90.0, "crawler": 100.0, "generator": 120.0, "notifier": 80.0, "broker": 30.0, "mongodb": 200.0}
    return {
        "jobs_per_s": jobs_per_s,
        "complete": complete,
        "llm_peak_in_flight": peak,
        "peak_rss_mib": rss | {"total": 600.0},
    }


def test_tier_c_ratios_divide_within_each_rep_by_the_best_config_and_show_peaks_in_flight_and_memory():
    reps = [
        [peer("bullmq", "io-c500", 150), peer("celery", "gevent-w2-c250", 60), peer("dramatiq", "gevent-p2-t250", 100)],
        [peer("bullmq", "io-c500", 100), peer("celery", "gevent-w2-c250", 0, "INCOMPLETE")],
        [peer("bullmq", "io-c500", 120), peer("celery", "gevent-w2-c250", 80, peak=450)],
    ]
    got = tier_c_ratios([ours(75.0), ours(80.0, peak=420), ours(999.0, complete=False)], reps)
    bullmq = got["ratio_llm_jobs_per_s_vs_bullmq"]
    assert bullmq["config"] == "io-c500" and bullmq["per_rep"] == [0.5, 0.8, None]
    assert (bullmq["median"], bullmq["min"], bullmq["max"], bullmq["n"]) == (0.65, 0.5, 0.8, 2)
    celery = got["ratio_llm_jobs_per_s_vs_celery"]
    assert celery["per_rep"] == [1.25, None, None]
    assert got["ratio_llm_jobs_per_s_vs_dramatiq"]["per_rep"] == [0.75, None, None]
    table = got["tier_c_peers_table"]
    # Sitewright's row: its complete reps only (the incomplete 999 jobs/s is in no figure).
    assert "| **Sitewright** | defaults | 77.5 (75.0–80.0) |  |  | 410 (400–420) | 600 (gateway 90" in table
    assert "| bullmq | io-c500 | 120 | 0.65 (0.50–0.80) | 0.50, 0.80, – | 500 (500–500) | 360 (workers 300" in table
    assert "| celery | gevent-w2-c250 | 70.0 | 1.25 (1.25–1.25) | 1.25, –, – | 475 (450–500) |" in table


def test_tier_c_ratios_without_peer_runs_or_our_figures_give_no_ratio():
    got = tier_c_ratios([None, {"complete": False, "error": "boom"}], [[], [{"status": "failed", "scenario": "x"}]])
    for system in ("bullmq", "celery", "dramatiq"):
        assert got[f"ratio_llm_jobs_per_s_vs_{system}"]["median"] is None
    assert "| **Sitewright** | defaults | – |" in got["tier_c_peers_table"]
