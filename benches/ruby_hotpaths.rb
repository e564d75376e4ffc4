# frozen_string_literal: true

# Issue 17's Ruby workload, per call (loop included), by the wall clock, in one process
# per build: 100,000 writes (key and value built in the loop), 100,000 current reads and
# 10,000 as_of reads over random keys (built beforehand), 100,000 appends with
# partition_key:, 10,000 history_partition calls (100-fact slices), and the bare write
# loop. Compare two builds side by side by alternating runs:
#
#   ruby benches/ruby_hotpaths.rb --compare OLD_LIB NEW_LIB [ROUNDS]
#
# (each round runs one process per build, in alternating order; the medians are printed).
# A single build: ruby -Ilib benches/ruby_hotpaths.rb
require "rbconfig"

if (i = ARGV.index("--compare"))
  libs = ARGV[i + 1, 2]
  rounds = Integer(ARGV[i + 3] || 3)
  runs = Hash.new { |h, k| h[k] = Hash.new { |hh, kk| hh[kk] = [] } }
  rounds.times do |r|
    (r.even? ? libs : libs.reverse).each do |lib|
      out = IO.popen([RbConfig.ruby, "-I", lib, __FILE__], &:read)
      raise "run against #{lib} failed" unless $?.success?

      out.each_line do |line|
        name, us = line.split
        runs[lib][name] << Float(us)
      end
    end
  end
  median = ->(a) { a.sort[a.size / 2] }
  names = runs[libs[0]].keys
  puts "| path | #{libs[0]} µs/call | #{libs[1]} µs/call | old / new |"
  puts "|---|---:|---:|---:|"
  names.each do |n|
    a = median.(runs[libs[0]][n])
    b = median.(runs[libs[1]][n])
    puts format("| %s | %.2f | %.2f | %.2f× |", n, a, b, a / b)
  end
  exit
end

require "igniter-ledger"
L = Igniter::Ledger
N = 100_000
KEYS = 10_000
rng = Random.new(7)

def clock = Process.clock_gettime(Process::CLOCK_MONOTONIC)

def per_call(name, n)
  GC.start
  t = clock
  yield
  puts format("%s %.3f", name, (clock - t) * 1e6 / n)
end

sink = nil
per_call("loop", N) { N.times { |i| sink = ["k#{i % KEYS}", { title: "t#{i}", status: :open, n: i }] } }
s = L::LedgerStore.new
per_call("write", N) { N.times { |i| s.write(store: :tasks, key: "k#{i % KEYS}", value: { title: "t#{i}", status: :open, n: i }) } }
keys = Array.new(N) { "k#{rng.rand(KEYS)}" }
per_call("read", N) { keys.each { |k| s.read(store: :tasks, key: k) } }
log = s.fact_log_all
times = Array.new(10_000) { log[rng.rand(log.size)].transaction_time }
per_call("as_of", 10_000) { times.each_with_index { |t, j| s.read(store: :tasks, key: keys[j], as_of: t) } }
per_call("append", N) do
  N.times { |i| s.append(history: :orders, event: { order_id: "o#{i % 1000}", amount: i, kind: :line }, partition_key: :order_id) }
end
orders = Array.new(10_000) { "o#{rng.rand(1000)}" }
per_call("history_partition", 10_000) do
  orders.each { |o| s.history_partition(store: :orders, partition_key: :order_id, partition_value: o) }
end
