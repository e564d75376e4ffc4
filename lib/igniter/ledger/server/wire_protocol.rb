# frozen_string_literal: true

require "zlib"

module Igniter
  module Ledger
    # The frames every socket transport carries: `[u32 BE body length][body][u32 BE
    # CRC32(body)]`, the WAL's framing. Include it or call its functions directly.
    module WireProtocol
      # The largest body read_frame accepts unless told otherwise (16 MiB).
      MAX_FRAME_BYTES = 16 * 1024 * 1024

      # A frame that cannot be read: bad CRC, oversize length, or a stream cut inside it.
      class FrameError < StandardError; end

      module_function

      # The frame carrying `body` (a String, sent as bytes).
      def encode_frame(body)
        body = body.to_s.b
        [body.bytesize].pack("N") << body << [Zlib.crc32(body)].pack("N")
      end

      # Reads one frame's body from `io`; nil at a clean end of stream (before a frame).
      # Raises FrameError for a cut, oversize or corrupt frame.
      def read_frame(io, max_bytes: MAX_FRAME_BYTES)
        header = read_exact(io, 4)
        return nil if header.nil?

        length = header.unpack1("N")
        raise FrameError, "frame of #{length} bytes exceeds the limit of #{max_bytes}" if length > max_bytes

        body = length.zero? ? +"" : read_exact(io, length)
        raise FrameError, "stream ended inside a frame body" if body.nil?

        trailer = read_exact(io, 4)
        raise FrameError, "stream ended before a frame's CRC" if trailer.nil?
        raise FrameError, "frame CRC mismatch" unless trailer.unpack1("N") == Zlib.crc32(body)

        body.force_encoding(Encoding::UTF_8)
      end

      # Exactly n bytes, or nil when the stream ends first (raises FrameError when it ends
      # after some bytes of them).
      def read_exact(io, n)
        buf = +""
        while buf.bytesize < n
          chunk = io.read(n - buf.bytesize)
          if chunk.nil? || chunk.empty?
            return nil if buf.empty?

            raise FrameError, "stream ended after #{buf.bytesize} of #{n} bytes"
          end
          buf << chunk
        end
        buf.b
      end
    end
  end
end
