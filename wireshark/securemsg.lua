-- securemsg.lua: a Wireshark dissector for the securemsg lab's wire protocol.
--
-- The specification is PROTOCOL.md: 4-byte big-endian length-prefixed frames over TCP
-- (section 1), the xor cipher (section 2) whose server answers every frame with
-- "ACK: Received N bytes" (section 3), and secure mode, Noise_NNpsk0_25519_ChaChaPoly_SHA256
-- (section 8): two 48-byte handshake messages, then transport chunks of 17..65535 bytes.
--
-- Install and use: wireshark/README.md. Written for Wireshark 3.x/4.x (Lua 5.2 to 5.4).

local proto = Proto("securemsg", "securemsg lab protocol")

local DIR_C2S, DIR_S2C = 0, 1
local MODE_AUTO, MODE_XOR, MODE_NOISE = 0, 1, 2
local NOISE_HANDSHAKE_LEN, NOISE_KEY_LEN, NOISE_TAG_LEN = 48, 32, 16
local NOISE_MIN_TRANSPORT, NOISE_MAX_TRANSPORT = 17, 65535
local DEFAULT_PORTS = "5000-5003"
local INFO_TEXT_MAX = 40

-- Lua 5.2 has bit32, Lua 5.3+ the ~ operator (kept out of the parser's way with load).
local bxor = (bit32 and bit32.bxor) or (bit and bit.bxor)
    or load("return function(a, b) return a ~ b end")()
local unpack = table.unpack or unpack

-- Preferences --------------------------------------------------------------------------

proto.prefs.ports = Pref.range("Server TCP ports", DEFAULT_PORTS,
    "TCP ports that securemsg servers listen on (the lab's: 5000-5003). The side on one of "
    .. "these ports is the server.", 65535)
proto.prefs.mode = Pref.enum("Cipher", MODE_AUTO,
    "How frames are read: auto guesses per connection from its first frame (a 48-byte "
    .. "frame that does not decrypt to text with the xor key is a Noise handshake)",
    { { "auto", "Auto (guess per connection)", MODE_AUTO },
      { "xor", "xor (the seed's cipher)", MODE_XOR },
      { "noise", "noise (Noise_NNpsk0_25519_ChaChaPoly_SHA256)", MODE_NOISE } }, false)
proto.prefs.xor_key = Pref.string("XOR key", "MY_SECRET_KEY",
    "The shared key of xor mode, as text; prefix it with hex: for a key written as hex "
    .. "digits (hex:4d595f...)")
proto.prefs.max_frame = Pref.uint("Maximum frame", 1048576,
    "The receivers' --max-frame: a longer xor frame is malformed (the server closes)")

-- Fields -------------------------------------------------------------------------------

local directions = { [DIR_C2S] = "client → server", [DIR_S2C] = "server → client" }
local modes = { [MODE_XOR] = "xor", [MODE_NOISE] = "noise" }
local NOISE_HS1, NOISE_HS2, NOISE_TRANSPORT = 1, 2, 3
local noise_types = {
    [NOISE_HS1] = "handshake message 1 (-> psk, e)",
    [NOISE_HS2] = "handshake message 2 (<- e, ee)",
    [NOISE_TRANSPORT] = "transport chunk",
}

local f = {
    length = ProtoField.uint32("securemsg.length", "Length", base.DEC, nil, nil,
        "Payload length (the 4-byte big-endian prefix; the prefix itself not counted)"),
    direction = ProtoField.uint8("securemsg.direction", "Direction", base.DEC, directions),
    mode = ProtoField.uint8("securemsg.mode", "Cipher", base.DEC, modes),
    index = ProtoField.uint32("securemsg.index", "Frame in this direction", base.DEC, nil, nil,
        "1 for the first frame each side sends on this connection"),
    payload = ProtoField.bytes("securemsg.payload", "Payload"),
    plaintext = ProtoField.string("securemsg.plaintext", "Plaintext", base.UNICODE,
        "The payload xor-decrypted with the key preference"),
    ack_n = ProtoField.uint32("securemsg.ack_n", "ACK length N", base.DEC, nil, nil,
        "N of the server's 'ACK: Received N bytes'"),
    request_in = ProtoField.framenum("securemsg.request_in", "Request in frame", base.NONE,
        frametype and frametype.REQUEST),
    request_len = ProtoField.uint32("securemsg.request_len", "Request length", base.DEC, nil,
        nil, "Length of the client frame this ACK answers"),
    ack_in = ProtoField.framenum("securemsg.ack_in", "ACK in frame", base.NONE,
        frametype and frametype.RESPONSE),
    unparsed = ProtoField.bytes("securemsg.unparsed", "Bytes the receiver does not read"),
    noise_type = ProtoField.uint8("securemsg.noise.msg_type", "Noise message", base.DEC,
        noise_types),
    noise_ephemeral = ProtoField.bytes("securemsg.noise.ephemeral",
        "Ephemeral public key (X25519)"),
    noise_payload_len = ProtoField.uint32("securemsg.noise.payload_len",
        "Encrypted payload length", base.DEC, nil, nil,
        "The handshake payload is empty: its encryption is the tag alone"),
    noise_marker = ProtoField.bytes("securemsg.noise.marker", "Chunk marker (encrypted)",
        base.NONE, "0x00 more chunks follow / 0x01 last chunk, encrypted with the data"),
    noise_ciphertext = ProtoField.bytes("securemsg.noise.ciphertext", "Ciphertext"),
    noise_tag = ProtoField.bytes("securemsg.noise.tag", "Tag (Poly1305)"),
    noise_nonce = ProtoField.uint64("securemsg.noise.nonce", "Nonce n", base.DEC, nil, nil,
        "The transport counter of this direction: 0 for the first chunk after the handshake"),
    noise_data_len = ProtoField.uint32("securemsg.noise.data_len", "Message data length",
        base.DEC, nil, nil, "Bytes of message data in this chunk: length - 1 marker - 16 tag"),
}
proto.fields = {}
for _, field in pairs(f) do
    proto.fields[#proto.fields + 1] = field
end

local group, severity = expert.group, expert.severity
local ef = {
    too_large = ProtoExpert.new("securemsg.too_large.expert",
        "Frame length above the maximum frame: the receiver closes the connection",
        group.MALFORMED, severity.ERROR),
    unparsed = ProtoExpert.new("securemsg.unparsed.expert",
        "Bytes after an oversize frame: the receiver has stopped reading",
        group.SEQUENCE, severity.NOTE),
    not_ack = ProtoExpert.new("securemsg.not_ack", "Server frame is not an ACK (wrong key?)",
        group.PROTOCOL, severity.WARN),
    ack_mismatch = ProtoExpert.new("securemsg.ack_mismatch",
        "ACK length differs from the request's", group.PROTOCOL, severity.WARN),
    bad_handshake = ProtoExpert.new("securemsg.noise.bad_handshake",
        "Noise handshake message is not 48 bytes", group.MALFORMED, severity.ERROR),
    bad_transport = ProtoExpert.new("securemsg.noise.bad_transport",
        "Noise transport frame outside 17..65535 bytes", group.MALFORMED, severity.ERROR),
    partial = ProtoExpert.new("securemsg.partial",
        "Frame continues beyond this segment (TCP reassembly is off)",
        group.REASSEMBLE, severity.NOTE),
}
proto.experts = { ef.too_large, ef.unparsed, ef.not_ack, ef.ack_mismatch, ef.bad_handshake,
    ef.bad_transport, ef.partial }

local tcp_stream_field = Field.new("tcp.stream")
local tcp_seq_field = Field.new("tcp.seq")

-- State of the capture, built on the first (in-order) pass ------------------------------
-- Wireshark dissects packets again, in any order, when one is selected; what needs the
-- order (which frame is a connection's first, which request an ACK answers) is decided the
-- first time a frame is seen and looked up afterwards.

local streams = {} -- tcp.stream -> { server_port, mode, count[dir], requests, broken[dir] }
local frames = {}  -- frame key -> { dir, index, mode, request }

function proto.init()
    streams, frames = {}, {}
end

-- Preference helpers -------------------------------------------------------------------

local port_ranges = {}

local function parse_ranges(text)
    local ranges = {}
    for item in tostring(text):gmatch("[^,%s]+") do
        local lo, hi = item:match("^(%d+)-(%d+)$")
        lo = tonumber(lo or item)
        hi = tonumber(hi or lo)
        if lo and hi then
            ranges[#ranges + 1] = { lo, hi }
        end
    end
    return ranges
end

local function in_ranges(port)
    for _, r in ipairs(port_ranges) do
        if port >= r[1] and port <= r[2] then
            return true
        end
    end
    return false
end

local function hex_to_bytes(hex)
    if #hex % 2 ~= 0 or hex:find("[^%x]") then
        return nil
    end
    return (hex:gsub("%x%x", function(pair) return string.char(tonumber(pair, 16)) end))
end

local function current_key()
    local text = proto.prefs.xor_key or ""
    local hex = text:match("^hex:(.*)$")
    local key = hex and hex_to_bytes(hex:gsub("%s", "")) or text
    if key == nil or key == "" then
        return "MY_SECRET_KEY"
    end
    return key
end

local registered_ports = ""
local tcp_table = DissectorTable.get("tcp.port")

local function register_ports()
    local wanted = tostring(proto.prefs.ports or DEFAULT_PORTS)
    if wanted == registered_ports then
        return
    end
    if registered_ports ~= "" then
        tcp_table:remove(registered_ports, proto)
    end
    if wanted ~= "" then
        tcp_table:add(wanted, proto)
    end
    registered_ports = wanted
    port_ranges = parse_ranges(wanted)
end

function proto.prefs_changed()
    register_ports()
end

-- Byte helpers -------------------------------------------------------------------------

local XOR_CHUNK = 4096 -- string.char(unpack(t)) stays well below Lua's C stack limit

local function xor_string(data, key)
    local keybytes = { key:byte(1, -1) }
    local klen = #keybytes
    local out = {}
    for start = 1, #data, XOR_CHUNK do
        local bytes = { data:byte(start, math.min(start + XOR_CHUNK - 1, #data)) }
        for j = 1, #bytes do
            bytes[j] = bxor(bytes[j], keybytes[(start + j - 2) % klen + 1])
        end
        out[#out + 1] = string.char(unpack(bytes))
    end
    return table.concat(out)
end

-- Well-formed UTF-8 without control characters (tab, newline and return allowed): what a
-- typed message looks like, and what random ciphertext almost never is.
local function looks_like_text(s)
    local i, n = 1, #s
    while i <= n do
        local c = s:byte(i)
        local extra
        if c < 0x20 then
            if c ~= 9 and c ~= 10 and c ~= 13 then
                return false
            end
            extra = 0
        elseif c < 0x7f then
            extra = 0
        elseif c >= 0xc2 and c <= 0xdf then
            extra = 1
        elseif c >= 0xe0 and c <= 0xef then
            extra = 2
        elseif c >= 0xf0 and c <= 0xf4 then
            extra = 3
        else
            return false
        end
        for k = 1, extra do
            local cc = s:byte(i + k)
            if cc == nil or cc < 0x80 or cc > 0xbf then
                return false
            end
        end
        i = i + 1 + extra
    end
    return true
end

local function info_text(s)
    local shown = s:sub(1, INFO_TEXT_MAX):gsub("[%c\127]", ".")
    if #s > INFO_TEXT_MAX then
        shown = shown .. "…"
    end
    return '"' .. shown .. '"'
end

-- Connection state ---------------------------------------------------------------------

-- heuristic_port: the server's port as the heuristic saw it, nil when a port matched.
local function server_port_of(pinfo, heuristic_port)
    local src, dst = pinfo.src_port, pinfo.dst_port
    local s_in, d_in = in_ranges(src), in_ranges(dst)
    if s_in ~= d_in then
        return s_in and src or dst
    end
    if heuristic_port then
        return heuristic_port
    end
    local matched = pinfo.match_uint
    if matched == src or matched == dst then
        return matched -- the port Decode As (or the port table) matched
    end
    return dst -- clients speak first in both modes
end

local function stream_state(pinfo, heuristic_port)
    local field = tcp_stream_field()
    local id = field and field.value or -1
    local st = streams[id]
    if st == nil then
        st = {
            server_port = server_port_of(pinfo, heuristic_port),
            count = { [DIR_C2S] = 0, [DIR_S2C] = 0 },
            requests = {},
            broken = {},
        }
        streams[id] = st
    end
    return st
end

local function guess_mode(tvb, offset, length)
    local pref = proto.prefs.mode
    if pref == MODE_XOR or pref == MODE_NOISE then
        return pref
    end
    if length ~= NOISE_HANDSHAKE_LEN then
        return MODE_XOR
    end
    local plain = xor_string(tvb:raw(offset + 4, length), current_key())
    return looks_like_text(plain) and MODE_XOR or MODE_NOISE
end

-- The frame's place on its connection, decided once (first pass) and remembered.
local function frame_info(tvb, offset, length, pinfo, st, dir)
    local key = pinfo.number .. ":" .. tvb:len() .. ":" .. offset
    local info = frames[key]
    if info == nil then
        st.mode = st.mode or guess_mode(tvb, offset, length)
        st.count[dir] = st.count[dir] + 1
        info = { dir = dir, index = st.count[dir], mode = st.mode }
        if dir == DIR_C2S then
            st.requests[info.index] = { len = length, frame = pinfo.number }
        else
            info.request = st.requests[info.index]
        end
        frames[key] = info
    end
    return info
end

-- Frame bodies -------------------------------------------------------------------------

local function add_ack(ftree, ptvb, plain, info, pinfo)
    local digits_at, _, digits = plain:find("^ACK: Received (%d+) bytes$")
    if digits_at == nil then
        ftree:add_proto_expert_info(ef.not_ack)
        return nil
    end
    local n = tonumber(digits)
    local item = ftree:add(f.ack_n, ptvb(#"ACK: Received ", #digits), n)
    local request = info.request
    if request then
        request.ack_frame = request.ack_frame or pinfo.number
        ftree:add(f.request_in, request.frame):set_generated()
        ftree:add(f.request_len, request.len):set_generated()
        if request.len ~= n then
            item:add_proto_expert_info(ef.ack_mismatch, string.format(
                "ACK says %d bytes, request #%d (frame %d) had %d", n, info.index,
                request.frame, request.len))
        end
    end
    return "ACK " .. digits
end

local function dissect_xor(tvb, offset, length, pinfo, ftree, info, st)
    local summary
    if length == 0 then
        ftree:add(f.plaintext, tvb(offset, 4), ""):set_generated()
        summary = '""'
    else
        ftree:add(f.payload, tvb(offset + 4, length))
        local plain = xor_string(tvb:raw(offset + 4, length), current_key())
        local ptvb = ByteArray.new(plain, true):tvb("Decrypted securemsg")
        ftree:add_packet_field(f.plaintext, ptvb(), ENC_UTF_8)
        summary = info_text(plain)
        if info.dir == DIR_S2C then
            summary = add_ack(ftree, ptvb, plain, info, pinfo) or summary
        end
    end
    if info.dir == DIR_C2S then
        local request = st.requests[info.index]
        if request and request.ack_frame then
            ftree:add(f.ack_in, request.ack_frame):set_generated()
        end
    elseif length == 0 then
        ftree:add_proto_expert_info(ef.not_ack)
    end
    return summary
end

local function dissect_handshake(tvb, offset, length, ftree, msg_type)
    ftree:add(f.noise_type, msg_type):set_generated()
    if length ~= NOISE_HANDSHAKE_LEN then
        if length > 0 then
            ftree:add(f.payload, tvb(offset + 4, length))
        end
        ftree:add_proto_expert_info(ef.bad_handshake,
            string.format("Noise handshake message of %d bytes (48 expected)", length))
        return "Bad handshake message (" .. length .. " bytes)"
    end
    local body = offset + 4
    ftree:add(f.noise_ephemeral, tvb(body, NOISE_KEY_LEN))
    ftree:add(f.noise_payload_len, 0):set_generated()
    ftree:add(f.noise_tag, tvb(body + NOISE_KEY_LEN, NOISE_TAG_LEN))
    return msg_type == NOISE_HS1 and "Handshake message 1 (psk, e)"
        or "Handshake message 2 (e, ee)"
end

local function dissect_transport(tvb, offset, length, ftree, info)
    ftree:add(f.noise_type, NOISE_TRANSPORT):set_generated()
    local n = info.index - 2 -- the handshake took one frame of each direction
    if length < NOISE_MIN_TRANSPORT then
        if length > 0 then
            ftree:add(f.payload, tvb(offset + 4, length))
        end
        ftree:add_proto_expert_info(ef.bad_transport,
            string.format("Noise transport frame of %d bytes (17..65535)", length))
        return "Bad transport frame (" .. length .. " bytes)"
    end
    local body, data_len = offset + 4, length - 1 - NOISE_TAG_LEN
    ftree:add(f.noise_nonce, UInt64(n)):set_generated()
    ftree:add(f.noise_marker, tvb(body, 1))
    if data_len > 0 then
        ftree:add(f.noise_ciphertext, tvb(body + 1, data_len))
    end
    ftree:add(f.noise_tag, tvb(body + 1 + data_len, NOISE_TAG_LEN))
    ftree:add(f.noise_data_len, data_len):set_generated()
    return string.format("Transport n=%d (%d data bytes)", n, data_len)
end

local function dissect_noise(tvb, offset, length, ftree, info)
    if info.index == 1 then
        local msg_type = info.dir == DIR_C2S and NOISE_HS1 or NOISE_HS2
        return dissect_handshake(tvb, offset, length, ftree, msg_type)
    end
    return dissect_transport(tvb, offset, length, ftree, info)
end

-- Columns ------------------------------------------------------------------------------

local function add_info(pinfo, dir, length, summary)
    local arrow = dir == DIR_C2S and "C→S" or "S→C"
    local text = string.format("%s Len=%d %s", arrow, length, summary)
    if tostring(pinfo.cols.protocol) == "SECUREMSG" then
        pinfo.cols.info:append(" | " .. text) -- another frame of the same packet
    else
        pinfo.cols.protocol:set("SECUREMSG")
        pinfo.cols.info:set(text)
    end
end

-- One frame, and the frame-level loop over a TCP payload --------------------------------

local function frame_tree(tree, tvb, offset, size, dir)
    local ftree = tree:add(proto, tvb(offset, size))
    ftree:add(f.direction, dir):set_generated()
    ftree:add(f.length, tvb(offset, 4))
    return ftree
end

local function dissect_frame(tvb, offset, length, pinfo, tree, st, dir)
    local info = frame_info(tvb, offset, length, pinfo, st, dir)
    local ftree = frame_tree(tree, tvb, offset, 4 + length, dir)
    ftree:add(f.mode, info.mode):set_generated()
    ftree:add(f.index, info.index):set_generated()
    local summary
    if info.mode == MODE_NOISE then
        summary = dissect_noise(tvb, offset, length, ftree, info)
    else
        summary = dissect_xor(tvb, offset, length, pinfo, ftree, info, st)
    end
    ftree:append_text(string.format(", %s, Len=%d: %s", directions[dir], length, summary))
    add_info(pinfo, dir, length, summary)
end

-- A length above the receiver's limit: it closes without reading the body, so nothing
-- after the prefix on this side of the connection is a frame.
local function dissect_oversize(tvb, offset, length, limit, pinfo, tree, st, dir)
    st.broken[dir] = st.broken[dir] or pinfo.number
    local rest = tvb:len() - offset
    local ftree = frame_tree(tree, tvb, offset, rest, dir)
    ftree:add_proto_expert_info(ef.too_large,
        string.format("Frame length %d above the maximum frame %d", length, limit))
    if rest > 4 then
        ftree:add(f.unparsed, tvb(offset + 4, rest - 4))
    end
    ftree:append_text(string.format(", %s, Len=%d: too large", directions[dir], length))
    add_info(pinfo, dir, length, "too large (limit " .. limit .. ")")
end

local function dissect_unparsed(tvb, pinfo, tree, dir)
    local ftree = tree:add(proto, tvb())
    ftree:add(f.direction, dir):set_generated()
    ftree:add(f.unparsed, tvb()):add_proto_expert_info(ef.unparsed)
    add_info(pinfo, dir, tvb:len(), "after an oversize frame")
end

local function frame_limit(st)
    if st.mode == MODE_NOISE then
        return NOISE_MAX_TRANSPORT
    end
    return proto.prefs.max_frame
end

local function dissect_payload(tvb, pinfo, tree, heuristic_port)
    local total = tvb:len()
    if total ~= tvb:reported_len() then
        return 0 -- snapped packet: frames cannot be followed
    end
    local st = stream_state(pinfo, heuristic_port)
    local dir = pinfo.dst_port == st.server_port and DIR_C2S or DIR_S2C
    if st.broken[dir] and pinfo.number > st.broken[dir] then
        dissect_unparsed(tvb, pinfo, tree, dir)
        return total
    end
    local offset = 0
    while offset < total do
        local avail = total - offset
        if avail < 4 then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
            return total
        end
        local length = tvb(offset, 4):uint()
        local limit = frame_limit(st)
        if length > limit then
            dissect_oversize(tvb, offset, length, limit, pinfo, tree, st, dir)
            return total
        end
        if avail < 4 + length then
            if pinfo.can_desegment > 0 then
                pinfo.desegment_offset = offset
                pinfo.desegment_len = 4 + length - avail
                return total
            end
            local ftree = frame_tree(tree, tvb, offset, avail, dir)
            ftree:add_proto_expert_info(ef.partial)
            return total
        end
        dissect_frame(tvb, offset, length, pinfo, tree, st, dir)
        offset = offset + 4 + length
    end
    return total
end

function proto.dissector(tvb, pinfo, tree)
    return dissect_payload(tvb, pinfo, tree, nil)
end

-- Heuristic for captures on other ports (the demo's servers listen on port 0) -----------
-- Claims a connection whose segment holds whole frames that are either a first Noise
-- handshake message (48 bytes, the connection's first data) or xor-decrypt to text. The
-- sender of an ACK is the server; otherwise the sender is the client (it speaks first).

local function whole_frames(tvb)
    local offset, total, lengths = 0, tvb:len(), {}
    while offset + 4 <= total do
        local length = tvb(offset, 4):uint()
        if length > proto.prefs.max_frame or offset + 4 + length > total then
            return nil
        end
        lengths[#lengths + 1] = length
        offset = offset + 4 + length
    end
    return offset == total and lengths or nil
end

local function heuristic(tvb, pinfo, tree)
    if tvb:len() < 4 or tvb:len() ~= tvb:reported_len() then
        return false
    end
    local lengths = whole_frames(tvb)
    if lengths == nil then
        return false
    end
    local seq = tcp_seq_field()
    local first_data = seq and seq.value == 1
    local server_port = pinfo.dst_port
    local claim = first_data and #lengths == 1 and lengths[1] == NOISE_HANDSHAKE_LEN
    if not claim then
        local key, offset, texts = current_key(), 0, 0
        for _, length in ipairs(lengths) do
            local plain = xor_string(tvb:raw(offset + 4, length), key)
            if length > 0 and not looks_like_text(plain) then
                return false
            end
            if plain:find("^ACK: Received %d+ bytes$") then
                server_port = pinfo.src_port
            end
            texts = texts + (length > 0 and 1 or 0)
            offset = offset + 4 + length
        end
        claim = texts > 0
    end
    if not claim then
        return false
    end
    pinfo.conversation = proto
    dissect_payload(tvb, pinfo, tree, server_port)
    return true
end

register_ports()
tcp_table:add_for_decode_as(proto)
proto:register_heuristic("tcp", heuristic)
