# frozen_string_literal: true

# Instructions per call of one Ruby-facing hot path (issue 17's workload), for callgrind.
# Run a path twice under callgrind, with N calls and with none (setup only); the
# difference of the two totals divided by N is the cost of one call, loop included.
# Instruction counts do not move with the machine's load, so two builds compare on a
# shared machine.
#
#   valgrind --tool=callgrind --callgrind-out-file=/dev/null ruby -Ilib benches/callgrind_paths.rb write 20000
#   valgrind --tool=callgrind --callgrind-out-file=/dev/null ruby -Ilib benches/callgrind_paths.rb write 0
#   (the "Collected" line of each; script/callgrind_paths runs every path and divides)
#
# Paths: loop (the write loop without calling the ledger), write, read, as_of, append,
# partition (history_partition of 100-fact slices). The write and append loops build
# their key and value inside the loop, as app code does (so does `loop`); the reads use
# keys built beforehand.
require "igniter-ledger"

path = ARGV.fetch(0)
n = Integer(ARGV.fetch(1))
L = Igniter::Ledger
KEYS = 10_000
ORDERS = 200
POOL = 20_000 # keys built before the measured calls (n of them are used, cycling)
rng = Random.new(42)

s = L::LedgerStore.new
case path
when "read", "as_of"
  KEYS.times { |i| s.write(store: :tasks, key: "k#{i}", value: { title: "t#{i}", status: :open, n: i }) }
  mid = s.fact_log_all[KEYS / 2].transaction_time
  KEYS.times { |i| s.write(store: :tasks, key: "k#{i}", value: { title: "u#{i}", status: :done, n: i }) }
  # Built the same whatever n is, so the difference of two runs holds only the calls.
  keys = Array.new(POOL) { "k#{rng.rand(KEYS)}" }
  # Each key once before the measured calls (the first read of a fact builds its value).
  KEYS.times { |i| s.read(store: :tasks, key: "k#{i}", **(path == "as_of" ? { as_of: mid } : {})) }
when "partition"
  (ORDERS * 100).times do |i|
    s.append(history: :orders, event: { order_id: "o#{i % ORDERS}", amount: i, kind: :line }, partition_key: :order_id)
  end
  orders = Array.new(POOL) { "o#{rng.rand(ORDERS)}" }
  ORDERS.times { |i| s.history_partition(store: :orders, partition_key: :order_id, partition_value: "o#{i}") }
end
GC.start
GC.disable

case path
when "loop"
  sink = nil
  n.times { |i| sink = ["k#{i % KEYS}", { title: "t#{i}", status: :open, n: i }] }
when "write"
  n.times { |i| s.write(store: :tasks, key: "k#{i % KEYS}", value: { title: "t#{i}", status: :open, n: i }) }
when "read"
  n.times { |i| s.read(store: :tasks, key: keys[i % POOL]) }
when "as_of"
  n.times { |i| s.read(store: :tasks, key: keys[i % POOL], as_of: mid) }
when "append"
  n.times do |i|
    s.append(history: :orders, event: { order_id: "o#{i % 1000}", amount: i, kind: :line }, partition_key: :order_id)
  end
when "partition"
  n.times { |i| s.history_partition(store: :orders, partition_key: :order_id, partition_value: orders[i % POOL]) }
else
  abort "unknown path #{path}"
end
