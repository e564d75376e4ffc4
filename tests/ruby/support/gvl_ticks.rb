# frozen_string_literal: true

# Shared by the GVL specs (concurrency_spec.rb, segmented_lock_gvl_spec.rb): does a commit
# let other Ruby threads run while it waits on fsync?
module GVLTicks
  module_function

  # Counts another thread's ticks strictly inside each call of the block (given the write
  # number). With the GVL held across the fsync the ticker runs only between calls, a tick
  # or two per write; released, it ticks for as long as the fsync takes. A fast fsync can
  # end before the ticker is scheduled, so it writes until `wanted` writes saw 5 ticks or
  # more, at most `limit` writes, and answers the ticks inside each write made.
  def inside_writes(wanted: 3, limit: 300)
    clock = -> { Process.clock_gettime(Process::CLOCK_MONOTONIC) }
    ticks = []
    done = false
    ticker = Thread.new do
      until done
        ticks << clock.call
        Thread.pass
      end
    end
    sleep 0.01 until ticks.size > 10
    spans = []
    limit.times do |i|
      t0 = clock.call
      yield i
      spans << [t0, clock.call]
      break if spans.count { |a, b| ticks.count { |t| t > a && t < b } >= 5 } >= wanted
    end
    done = true
    ticker.join
    spans.map { |a, b| ticks.count { |t| t > a && t < b } }
  end
end
