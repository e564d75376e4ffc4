# frozen_string_literal: true

# Changefeed from Ruby (issue 13): writer throughput with and without one subscriber
# block, and delivery latency write call -> block with 1 and 100 subscribers.
#
#   ruby -Ilib benches/changefeed_bench.rb [writes]
#
# Prints Markdown tables; asserts nothing about speed.
require "igniter-ledger"

L = Igniter::Ledger
N = Integer(ARGV[0] || 50_000)

def clock
  Process.clock_gettime(Process::CLOCK_MONOTONIC)
end

def writes(subscriber)
  feed = subscriber ? L::ChangefeedBuffer.new : nil
  store = L::LedgerStore.new(changefeed: feed)
  got = 0
  sub = feed&.subscribe { |_e| got += 1 }
  t = clock
  N.times { |i| store.write(store: :bench, key: "k#{i % 10_000}", value: i) }
  rate = N / (clock - t)
  sleep 0.01 until got == N if sub
  sub&.close
  rate
end

def median(xs)
  xs.sort[xs.size / 2]
end

puts "### Ruby: writes/s with and without one subscriber block (#{N} writes, in memory, median of 3)\n\n"
puts "| no changefeed | 1 subscriber | slowdown |"
puts "|---:|---:|---:|"
a = []
b = []
3.times do
  a << writes(false)
  b << writes(true)
end
a = median(a)
b = median(b)
puts format("| %.0f | %.0f | %+.1f%% |", a, b, (a - b) / a * 100)

def latency(subs, n)
  feed = L::ChangefeedBuffer.new(subscriber_queue_size: 10_000)
  store = L::LedgerStore.new(changefeed: feed)
  starts = []
  lat = Queue.new
  handles = Array.new(subs) { feed.subscribe { |e| lat << (clock - starts[e.sequence - 1]) } }
  n.times do |i|
    starts << clock
    store.write(store: :lat, key: "k#{i}", value: i)
    sleep 0.0005
  end
  all = Array.new(n * subs) { lat.pop }.sort
  handles.each(&:close)
  [0.5, 0.99].map { |p| all[((all.size - 1) * p).round] * 1e6 }
end

puts "\n### Ruby: delivery latency, write call -> subscriber block (in memory, paced writes)\n\n"
puts "| subscribers | writes | p50 µs | p99 µs |"
puts "|---:|---:|---:|---:|"
[[1, 2000], [100, 200]].each do |subs, n|
  p50, p99 = latency(subs, n)
  puts format("| %d | %d | %.0f | %.0f |", subs, n, p50, p99)
end
