// tokenizer_spm.cpp: libsentencepiece behind the small extern "C" API of dv_spm.h. Exceptions and
// std::string stay in this file; everything else in duovid is C.
#include "llm/dv_spm.h"

#include "core/dv_error.h"

#include <sentencepiece_processor.h>

#include <new>
#include <string>
#include <vector>

struct dv_spm {
    sentencepiece::SentencePieceProcessor sp;
    std::vector<std::string> pieces; // id -> piece, cached so C callers get stable pointers
    bool dummy_prefix = true;
};

extern "C" int dv_spm_load(const char *path, dv_spm **out) {
    *out = nullptr;
    dv_spm *s = new (std::nothrow) dv_spm();
    if (!s) return dv_error_set(DV_ENOMEM, "out of memory");
    auto st = s->sp.Load(path);
    if (!st.ok()) {
        int code = st.code() == sentencepiece::util::StatusCode::kNotFound ? DV_ENOTFOUND : DV_EFORMAT;
        dv_error_set(code, "%s: %s", path,
                     code == DV_ENOTFOUND ? "not found" : "not a valid SentencePiece model");
        delete s;
        return code;
    }
    try {
        const int n = s->sp.GetPieceSize();
        s->pieces.reserve((size_t)n);
        for (int i = 0; i < n; i++) s->pieces.push_back(s->sp.IdToPiece(i));
        // sentencepiece's decode drops the leading "▁" of a sequence when the normalizer adds a dummy
        // prefix (or removes extra whitespace). Those flags live in the protobuf spec, whose generated
        // headers are not installed, so ask the decoder itself with the first "▁..." piece.
        s->dummy_prefix = false;
        for (int i = 0; i < n; i++) {
            if (s->pieces[(size_t)i].rfind("\xe2\x96\x81", 0) != 0 || s->sp.IsControl(i) || s->sp.IsUnknown(i) ||
                s->sp.IsUnused(i) || s->sp.IsByte(i))
                continue;
            std::string text;
            s->dummy_prefix = s->sp.Decode(std::vector<int>{i}, &text).ok() && (text.empty() || text[0] != ' ');
            break;
        }
    } catch (...) {
        delete s;
        return dv_error_set(DV_ENOMEM, "%s: out of memory", path);
    }
    *out = s;
    return 0;
}

extern "C" void dv_spm_free(dv_spm *s) { delete s; }
extern "C" int dv_spm_vocab_size(const dv_spm *s) { return (int)s->pieces.size(); }
extern "C" int dv_spm_bos(const dv_spm *s) { return s->sp.bos_id(); }
extern "C" int dv_spm_eos(const dv_spm *s) { return s->sp.eos_id(); }
extern "C" int dv_spm_adds_dummy_prefix(const dv_spm *s) { return s->dummy_prefix; }

extern "C" int dv_spm_encode(const dv_spm *s, const char *text, size_t len, int32_t *ids, int max, int *n) {
    std::vector<int> v;
    try {
        auto st = s->sp.Encode(std::string(text, len), &v);
        if (!st.ok()) return dv_error_set(DV_EINVAL, "tokenizer: %s", st.message());
    } catch (...) {
        return dv_error_set(DV_ENOMEM, "tokenizer: out of memory");
    }
    *n = (int)v.size();
    for (int i = 0; i < *n && i < max; i++) ids[i] = v[(size_t)i];
    return 0;
}

extern "C" const char *dv_spm_piece(const dv_spm *s, int id) {
    return id >= 0 && (size_t)id < s->pieces.size() ? s->pieces[(size_t)id].c_str() : nullptr;
}

extern "C" int dv_spm_is_byte(const dv_spm *s, int id, uint8_t *byte) {
    if (!s->sp.IsByte(id)) return 0;
    // byte pieces are spelled "<0xAB>"
    *byte = (uint8_t)std::stoi(s->pieces[(size_t)id].substr(3, 2), nullptr, 16);
    return 1;
}

extern "C" int dv_spm_is_control(const dv_spm *s, int id) { return s->sp.IsControl(id); }
extern "C" int dv_spm_is_unknown(const dv_spm *s, int id) { return s->sp.IsUnknown(id); }
