#!/usr/bin/env bash
# Turns the JSON results of the scenarios into PNG charts (gnuplot).
# Usage: bench/plot.sh RESULTS_DIR [CHART_DIR=bench/charts]
# RESULTS_DIR is what the scenarios wrote with PARLEY_BENCH_OUT=RESULTS_DIR:
#   throughput:        health-C.json, message-C.json, fresh-C.json -> throughput.png
#   llm-latency:       stream-N.json                   -> llm-latency.png
#   long-conversation: long-conversation.json          -> long-conversation.png
#   memory:            memory-N-on|off.rss.json        -> memory.png
# A chart whose results are missing is skipped.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
results="${1:?usage: bench/plot.sh RESULTS_DIR [CHART_DIR]}"
charts="${2:-$root/bench/charts}"
mkdir -p "$charts"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
style='set terminal pngcairo size 900,500 font "sans,11"; set grid; set key top left'

# throughput: req/s of send-message and /health, and send p99, against concurrency.
if ls "$results"/message-*.json > /dev/null 2>&1; then
  for f in "$results"/message-*.json; do
    c=$(jq .concurrency "$f")
    h="$results/health-$c.json"
    fresh="$results/fresh-$c.json"
    echo "$c $(jq .requests_per_s "$f") $(jq .requests_per_s "$h") $(jq .latency.whole.p99_ms "$f")" \
      "$(if [ -f "$fresh" ]; then jq .requests_per_s "$fresh"; else echo NaN; fi)"
  done | sort -n > "$tmp/throughput.dat"
  gnuplot -e "$style; set output '$charts/throughput.png';
    set title 'send-message beside GET /health (echo, zero latency)';
    set logscale x 2; set xlabel 'concurrent users'; set ylabel 'requests/s';
    set y2label 'send-message p99 (ms)'; set y2tics; set ytics nomirror;
    plot '$tmp/throughput.dat' using 1:3 with linespoints title 'GET /health',
         '' using 1:2 with linespoints title 'send-message, long conversations',
         '' using 1:5 with linespoints title 'send-message, short conversations',
         '' using 1:4 axes x1y2 with linespoints dashtype 2 title 'send-message p99 (right)'"
fi

# llm-latency: time to first delta over the model's, p50 and p99, against streams.
if ls "$results"/stream-*.json > /dev/null 2>&1; then
  for f in "$results"/stream-*.json; do
    jq -r '"\(.concurrency) \(.latency.first_delta.p50_ms - 300) \(.latency.first_delta.p99_ms - 300) \(.deltas_per_s)"' "$f"
  done | sort -n > "$tmp/llm.dat"
  gnuplot -e "$style; set output '$charts/llm-latency.png';
    set title 'concurrent SSE streams (echo: 300 ms to first token, 20 ms a word)';
    set logscale x 10; set xlabel 'streaming conversations'; set ylabel 'first delta - 300 ms (ms)';
    set y2label 'delta events/s'; set y2tics; set ytics nomirror;
    plot '$tmp/llm.dat' using 1:2 with linespoints title 'p50',
         '' using 1:3 with linespoints title 'p99',
         '' using 1:4 axes x1y2 with linespoints dashtype 2 title 'delta events/s (right)'"
fi

# long-conversation: every send's latency against its position.
if [ -f "$results/long-conversation.json" ]; then
  jq -r '.series_ms | to_entries[] | "\(.key + 1) \(.value)"' "$results/long-conversation.json" \
    > "$tmp/long.dat"
  gnuplot -e "$style; set output '$charts/long-conversation.png';
    set title 'the k-th send of one conversation (echo, zero latency)';
    set xlabel 'k'; set ylabel 'latency (ms)'; set logscale y;
    plot '$tmp/long.dat' using 1:2 with points pointtype 7 pointsize 0.3 title 'each send'"
fi
# memory: peak RSS against conversations touched, passivation on and off.
if ls "$results"/memory-*-on.rss.json > /dev/null 2>&1; then
  for mode in on off; do
    for f in "$results"/memory-*-"$mode".rss.json; do
      jq -r '"\(.conversations) \(.rss_peak_kib / 1024)"' "$f"
    done | sort -n > "$tmp/memory-$mode.dat"
  done
  gnuplot -e "$style; set output '$charts/memory.png';
    set title 'server memory with N conversations touched';
    set logscale xy; set xlabel 'conversations'; set ylabel 'peak RSS (MiB)';
    plot '$tmp/memory-on.dat' using 1:2 with linespoints title 'passivation on (10,000 live at most)',
         '$tmp/memory-off.dat' using 1:2 with linespoints title 'passivation off'"
fi

ls "$charts"
