"""Concepts reserved for an independent evaluation of the shipped demo model.

``../shared/demo-data/reserved.json`` lists sha256 hashes of normalised names
and emoji code points; nothing that matches may be trained, tuned or selected
on. The rule implemented here (``reserved.json``'s "about" field, plus our
near-synonym rule):

* a name is normalised: lower case, runs of '-', '_' and ':' as one space,
  whitespace collapsed, trimmed (``'Party_Popper'`` -> ``'party popper'``);
* an emoji is its upper-case hex code point sequence joined by '-'
  (``'1F389'``); the whole sequence and every single code point are checked;
* a name is reserved if any contiguous run of its words is listed, also after
  simple singular/plural changes of each word (``'cats'``, ``'cat'``,
  ``'boxes'``, ``'berries'``/``'berry'``...): a listed ``'x'`` therefore drops
  ``'x face'``, ``'xs'`` and ``'small x'`` too (near-synonyms by form); a
  long word is also tried split in two (``'partypopper'``), since icon names
  run words together;
* near-synonyms by meaning that we noticed for names we dropped are listed as
  hashes in :data:`SYNONYM_SHA256` (hashes, so this file does not reveal the
  reserved names either).

The hashes themselves are read from the shared folder (never copied into the
repository).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from zse_infer.errors import ConfigError

from . import SHARED

# The shared folder beside the repository checkout.
DEFAULT_PATH = SHARED / "demo-data" / "reserved.json"

# sha256 of normalised near-synonyms (by meaning) of reserved names that we
# noticed among the candidate concepts and icon names; dropped like reserved
# names. Added by hand when reading what the reserved check dropped.
SYNONYM_SHA256: frozenset[str] = frozenset(
    {
        "00320825242cecf23a143281a96cff696f86a9d1afc90e54c9cd8de5ba5da210",
        "0727fc6654c3e54739f2d3066f886f137a08b7b8ff4c9f52f1a57c9f21734c9f",
        "0bc851d8e8861b20da271d23994b9bc2604785313d3369acd3a2f8121b97be61",
        "0de8ab6315488d30b61d0cd3d4a99d994bbb781c6efe77147fe3cae8f7a21ad8",
        "1044dec7206e8d7c9fbb4ae8f766668406d2567fc7fc1a160a9d4700fcf8f8e9",
        "136aa3c357b09c745ab259b5575e9a07b867598a99d194ad2deb380305143382",
        "13809668fb436386706f67dcb052ed584a04ba16a8c02a17d66d34c30fceda21",
        "14cf0fbca484cf6cae8e3c3e3f0eb8ab9fbaa3cf1f043fc41f9822046b073a25",
        "184c926681179fdf70982eef602f81688f7c74d37fe7f43f024544da28aa3c87",
        "198becaf9c45016fec5d9bcd2e8d748de6b44a26cd4cc35ea72b670e665dff79",
        "1a89614a7ae4f0ff33ad4cf25ee6512cdf87b763d086466ac684ebc596a57e2d",
        "1b86a7b376b02f28c5e122e456129ccd49e37f466137d83e7b787c29b87aa3b3",
        "1ccc5212a30a1256c10c9d20c658c1099cd1a3d437b8a00add1e968bdcf7bd1c",
        "1dd14ffc3c3045741a5e1821fcaefe7bc9833e0242051ff67053638040cb9b02",
        "20cd4732ae60507a2e2e01ae3ca7a75cc3c0d5a4e98f9a69689e1f31df74493e",
        "215c7a7009ca29d5e0617c9cc71fe369d85ca6f69c82f394ad8e58590d462a69",
        "21e721c35a5823fdb452fa2f9f0a612c74fb952e06927489c6b27a43b817bed4",
        "224948ca810fc2bc9e3d80c0b1129fe2487fa4e307961001ab8443db82f7bb69",
        "23f90031570e640f884e4ab9eb2e23cd2423137dee2fc39340d1a6bbcbd11605",
        "25cdb46d8d2115a24eb15c3c58f34f3330cfca4fec249ff70b7cad2bb560a0dd",
        "27a0113e9ce8bfd5ba29c172f6ea84f16fd3086b3fc0065e72d6101c016433aa",
        "2c58cca89f8ae103e3dac0edb10faf2d1701f92e45d34039c35b1aa65e4cdefd",
        "2df5712e1cf303a50fac51e4b2c0ac71884f746b20f206f9df2eb6375fde7270",
        "2fe840e13244a9d748883574c1f1b7b1d7020eb39d0735b8f91ef5cf6f35173e",
        "30cb2df4a767c8ceac426e0b9d73b7803eea04848625dc124e796620e4e4a3d7",
        "31a2d5282683edb3a22c565f199aa96fb9ffb3107af35aad92ee1cd567cfc25d",
        "3269059614a1db7915a46287d44b3957ad2b916e8a47e15449aa5afdf61a5aa8",
        "378bfce5cda2599a6cda399f1cacef861e4e575ec794744dcf0e55e9c4780633",
        "389d7a3c351c7f1ca75b7c083c25bc05371c065edfbadf6a4e3d7e9b9e1babaa",
        "3b706ff5ed3554ede6f8c366f48e8b2ad2b8c2810a64fa6fc9f449b735e6e87f",
        "3d41b24a1a4c2f5a66896ef9aee33f9fd3d0ebfb97b056cbc4de419d1d364946",
        "3db051c8db8ab33407bcf080ea1784800f8783c680f347eefc68a6f9cbf64d29",
        "3e8e40c0af5f5ea5a94837f090631379e090fdb2fcf0c65a65859ae051e2c794",
        "3ef81cb18bdaac2f67a114146b7f9c8da4bf8ceef8021dfc2da4daa8c1416e52",
        "43254116cb26579659d8d1163c1a48e21a449bf82702657761a3ffa3115f73e1",
        "437bcc4073b8d16d06615567d03b4f4d0e3e68a42423eb39bc8d657390241fc3",
        "4566a3eca61559aff973b88df013fa5d722d8019d1d16627b91c5911f14983fa",
        "45e938173c817a8ccb1d1ffcf91ddb831c4893997a504c4e94f76e39f2eda5a8",
        "468c7b6449dd928f2ddad069fbfdb31f59ce214d67a1422c7610efb886ce6aa7",
        "486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7",
        "49eff747f7b66f70133bfe00aa8ac2d6b0fbee5be80e52537b0163f147d20418",
        "4f54177d85c2d3092b6fc31f85c1d857f3c716653d2834f80e82fcd10840f931",
        "50edb564bbf1c4f044d1343fbad576fdf5cc93f4b50ff9eecd920bcec6d19907",
        "51b57fa2315ff3308a2fa19b79c6682e7449ddc241eecc900180d064c16a24f0",
        "51fa227dd280f0438b2da8e1bde55e4ed1a904cce27f6f74d51e9c1e37a47206",
        "5364b92e50b1944f33d10f662b1c90a18a004ed8da1434376c41cde8f920aede",
        "541c053166dfb3d2a49d39604a6fcb43dec3ac278ba87faa5b0bc87e08548319",
        "557eb643f8bfc94d0d14006bdf63a4efa9858f9fe878b42d3a6b9c11e1326cec",
        "55c64d0fcd6f9d5f7c828093857e3fdfda68478bb4e9bd24d481ef391c7804e8",
        "5699b7387d428f23e37055299d79e1711b050da3315214bfb73cf2e4d5181145",
        "58ef49cec905cafee55afad0e875af355bbcbb0574afa59650c745bcb59e5b4a",
        "5a948ffe5f0f63845354614fb3753978c61977ccb103b151658922fa87d8cc36",
        "5d2c13d6f9fa421125a9f55e56fd0e4df9319ef30087f8f4675cd6f05135f397",
        "5dd46878bb0b580b3086cfd1091b7bf6204c7bd521f6ac371226367241c3ab53",
        "604f8cb27ac7bb52ac565a91fd49f3cc9ef650cdd5cc794cb35cb834efe8ff21",
        "60be9861750facbfad8758254a2f76c0cfe78d54459a3bc187d49b1401fcd8e8",
        "619a2ccf126ce837dc7cd3bdb4d7f44280a0ea4f721e5a738f859aa19d52a78f",
        "6415fae65a2b6778589691301b8a0aebed88049b5433f9e3e409984ccc3b490c",
        "66780f1fb0171bd83d644b990afe3b02c4a96c0d7102d7ab10cdd977c980b845",
        "6bc8f453299d371e9fa7d4b4f39ed71d5c4a2cfc70c3f4702a8e759c7c8e8251",
        "6c00c076acc9c2f4b6a0c6403e07c7eb8ca220a10b4750c239cd013f24a8778c",
        "6e317bcd6839e8877395411b47b2b89d2bae7ccb05f78cee32bcdf76b5294265",
        "702b023f619f27aa4a5072fb02876fa6a5eb0164ac60222b51bdf40a018836b7",
        "72bec4bd8f6d91a8818eb2ec6539c1d7d9b4c95178663c6b346d27c8425124a3",
        "737bf6f24108659f2b1e82148a458f8aece7211aea06bbb39475a3afb605eabe",
        "74a46b664dd007ae9564456a83fc1dcc85564bb003b59aa949539e9b0e2fd6a5",
        "74a51c3ce9ff025523588c1c1de1cda985cf96fc868aafb675639d15c13edb82",
        "754ee0c9fc2cd559bc425b8c4287a474bc68e77d968b21387edbed66e2a2433b",
        "767e419e7fe373f163d4f570040ee782139aa65aeb2d3eccd1953479a148c2b0",
        "76c92dcf94dacf5e9da82b38957cfd4a2c6c68c8be46c2d419d09622a60e0265",
        "772b17933a787611eadcdaeb067fe83715003961c08293dbfc8244e20d3c4646",
        "776488775500737b9e1072f1b38e50a1c9561c2a6ccf5d3e3ca4ec575a864192",
        "795e59c11ac3880496e3f584163aea5481a05ea0f862806fce154662119380ab",
        "7b74b418a352d67108173c20c1b16b4b726bad8606be65711ff924dbf9a40670",
        "7c22006879c65567d4ce215fb9cca9e9514f71b9048eb0564e3fa793fcd9cbc3",
        "7c82602500857aa6ed0cf38c4c3e4ec645bdcaa82c00b9155eb08be100c778a9",
        "7c9bbe5ec9b3fb774e8fa0f54247e93c34ddf8e5d16fe3073420de0ae81a262d",
        "82244417f956ac7c599f191593f7e441a4fafa20a4158fd52e154f1dc4c8ed92",
        "8365591b16ab633ada88eb1fbc37571e388fddf8eefd789cc0a46db88fbec726",
        "836a6060814e92dab56337f4f32b1e2c115e1e2831473dab09e9ab1243d8f966",
        "836ff184e7b41b1e13cb5fd89fa1de98dbbab99e9d2918913ff43b86a5c7c213",
        "8825e76530f87ff5c737b3254c6936bc0a90bba3a10a91bbba739268208d378a",
        "8a60817c998ee0f2784a422fcfb9d55950cfc311ecaf4be2b7da2dda7e7b1e3a",
        "92719fe0cf8cd51592af31ee8a5736d79f7273777fa3f7b70bfe993a4cd32180",
        "92bea4d52a1d53f0c8111edf39e26a89cc9e691edcf7da6ad3593cda431ae4c8",
        "963ce94b47823f58d27f0033d9112659599b6c41224f958922a26f688f29bf75",
        "9950cec246ece55e46c9929ef30136e25c01b015637715c0d4aaf007208ae836",
        "99a5ec8dee37605d9718ee4d9bcee84fcf1af8b5ead8353e8163229a6087fec9",
        "9a105749cfcbac2e07d7640697861f62dfcc7c02bc24519e9c287431bc493f9d",
        "9b4ef3e5b7b4d1759cb8f880e34dbd5ea8c3fcd79ce33b89d7357bf64fcbfc91",
        "9b786abf87ff322f5fba7d3a719a095b1b1c986e0a50fa0494ae59dde785ccca",
        "9c1aec121be8df33991a2e9b01e09381d102de863b87b9f1815e1e746862092c",
        "9f3a4329d8325465f71ec2b21bfe6ddeede2976800a1929f753be66b8447648e",
        "9f4382994143bc781d34f76364a85b3bf8dd3acbb8ae3cbe11ec2f381a635d0f",
        "a439529bc65725a941ead4af3d824ca388a0c0c381ecdd148d6fb13c1fed0b8b",
        "a536d01c41b3528553e91541ad840f5b8c4dd66aabdeae6c1dab14c7d7a49c22",
        "a62a941752f66b293dc19d1149ab3bcde993e98544d123822bf7228791e6fed8",
        "a941a4c4fd0c01cddef61b8be963bf4c1e2b0811c037ce3f1835fddf6ef6c223",
        "aa1b69a8c485ba42782c313a55397cf4ef5c3d54403a6c58b37a2997afb33ce0",
        "acbe4bfc77e55c071db31f2e37c824d75794867d88499107dc8318cb22aceea5",
        "add0b887395735c131c7ac69fa576ad5fe748571f1fe0c2a8614c5230c63235f",
        "af20a4cdb149e87bd038f3abdb309393a087c451718d7927780afe6e80c8279a",
        "b04cb09fabfe6b51ab9ceedafc635c96ac20e5a2192f061a3cfa8a9d02919bd8",
        "b0eaeafbf3fadbe6d70268e131724ec7421ffc3d18653e2fb33a7db10e70ac83",
        "b117b7eb01e1d4e4f8a3b2852b3617e37cba8357e36112707af39db3caac5eed",
        "b23a57f108a6a63099a6e412ea7d5b4d741ed3ae577c8287cd987908a6f590c0",
        "b2e1232b1598ab1a052990dbdf63c1155530459b950f2c7795fbf2245c57d6d1",
        "b4b99c2c417d83e7365ece87fc4bf06d6e58ba620385f5b4d5b014ca188bc76b",
        "b53bcf919f24746d72094b8b86c0325cf40723d3d63240705db51a27b261bc96",
        "b62a51a45f7cdef7a0aad9fb7be7e693908c140a6379b43049ba1cca333c52b6",
        "b8c1ca626a33ed909d1fee4143dd0ff969017307b16a335f7ae347539a941ee3",
        "b92cb4dd1f184c7e3810c667ea83019fc478f5393e8f8336847f8fa9259b7b6c",
        "b988b5837c24ad1987f31266e0246b0fdaaf7948714cfa2a9f7757c52977ff14",
        "bbb29e93cc9aecb998b918c588caac32f2e5093ae74a13e8f7485ca9bee28e31",
        "bbfeb74a4b4216dfd0f7b10edf5743e6781e9f8ac7888a3392878a52c821a3b1",
        "c018019b6a8b01ab5868cf4be8db327a7549ae03202548b9ffcd2671c4c2b624",
        "c0d542fcef483aaede5ec4c885205b30969f9545fab63e3a37d1304f7270eff2",
        "c177affdff64002e306226176d2b8da5b15b14ef87bb52c6ab58d7ad2bd80848",
        "c2333a7e3a607935c67c1e6f6810395decc9f66f592b812aaada7db94ba215d6",
        "c2a6bc4a1d176d25080b6ab9eee1f512bb75c484a8890dc5cdb81ab3601576bb",
        "c67c1263651459822c344e42d19ec6cef16c7d1e98ad491f96a0959a51ac15c8",
        "c91e5b2418a7d74124e340c1ddf7323e1e8b1326f29daf71fd11ce8a94b365f2",
        "caadbcffec9038112a5642fc15e5aa67de8723f20d00d02cf27d39b708070d2c",
        "cd7419471a8bffef153ea4d027090e5b112555f357ed06901b78bd14bd594bc9",
        "ce5793ab2acfeb622b6f36ae1044c73c9910f62c9950326662a25e49b165a180",
        "cec3c7224bbe73a639813692f430390373e5f786be72de174da80ae9db9a07fa",
        "cef2e28b43f00b6c4201abab0785399f61bfb220567abbe7770b8949f56a1753",
        "d1675dfd27b2ff0bf3ee761b550ebc8252294bf1253c68b3b34330aa85e28b59",
        "d2a1fc043243f36ba9b7547fb7a28c60640977946c981d624107400405ee5e14",
        "d64a780f8652b49e6e7a166b55efaf416291b0cd86ee9580c0ac25a85ca2e181",
        "d90ee9ccf6bea1d2942a7b21319338198dec2a746f8a0d0771621f00da2e0864",
        "e2af9c1a38a2a2a962ac9fd665ba57f055f6a9f4a0010656a3169d26c1e362c0",
        "e34d1c9011e06204d0540f17e6370d18d2163d69944a3b43b5c92d68d89096fe",
        "e3dd6fdb8a071c394f7d6e1ecec1de7e8d46dd16c4533d35a78d169412c229c2",
        "e8c031f4d9e49011ac5671c9d67cc49fe18035b65d35672417462833b18fcb82",
        "e9087d0b20d80d3e12bc8530d883d7ad9c1eb3ebc5cb61824a2b460816503797",
        "eb1ea9d72fe0c79269a8dc2b047ddfb531b004ed19afb45eaef9e9a38cccf351",
        "ecc4873a1694eb0de0b33d68f0df091d6816127c1422266399700d02599a8628",
        "f469802a31447f90d6a033d43f18db7ebfbee7cc3c378024bcc0f1573d3feef8",
        "f5f19851b78e1330e28f7885ef47f08228a6269ad9adc3747dfddb3f74509eea",
        "f80105efab6d863fd8fc243d269094469e2277e8f12e5a0a9f401e88494f7b4b",
        "f9d2c106af28efbe5f8322822defaa650e80ac7e33588f35a5f80bcc9738ff95",
        "f9d35d43770d39092a663e665e82ae1d84a9e0da3d0d10c407acada6a40cd281",
        "fa61b0f0570245dbe6a2b714c854ed1829ca2d2ede0b184601731bd99c99cb98",
        "fe14010b4fe83303852f0467c919ef9a7ca089b91e96e3aad7d426dd87079297",
    }
)

_SEPARATORS = re.compile(r"[-_:]+")
_SPACE = re.compile(r"\s+")


def normalise_name(name: str) -> str:
    """``'Party_Popper'`` -> ``'party popper'`` (the rule of reserved.json)."""
    return _SPACE.sub(" ", _SEPARATORS.sub(" ", name.lower())).strip()


def normalise_code_points(code: str) -> str:
    """``'1f389'`` / ``'1F468_200D_1F373'`` -> upper-case hex joined by '-'."""
    parts = [p for p in re.split(r"[-_\s]+", code.strip()) if p]
    if not parts or not all(re.fullmatch(r"[0-9A-Fa-f]{1,6}", p) for p in parts):
        raise ConfigError(f"emoji code point sequence {code!r}: expected hexadecimal code points such as '1F389'")
    return "-".join(p.upper() for p in parts)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def word_forms(word: str) -> set[str]:
    """The word and its simple singular/plural forms (English regular rules only)."""
    forms = {word}
    if len(word) < 3 or not word.isalpha():
        return forms
    forms.add(word + "s")
    if word.endswith(("s", "x", "z", "ch", "sh", "o")):
        forms.add(word + "es")
    if word.endswith("y") and word[-2] not in "aeiou":
        forms.add(word[:-1] + "ies")
    if word.endswith("f"):
        forms.add(word[:-1] + "ves")
    if word.endswith("fe"):
        forms.add(word[:-2] + "ves")
    if word.endswith("ies"):
        forms.add(word[:-3] + "y")
    if word.endswith("ves"):
        forms.update({word[:-3] + "f", word[:-3] + "fe"})
    if word.endswith("es"):
        forms.add(word[:-2])
    if word.endswith("s") and not word.endswith("ss"):
        forms.add(word[:-1])
    return forms


def name_variants(name: str) -> set[str]:
    """Every contiguous run of words of the normalised name, each word in each of its forms,
    and every split of a long word in two (icon names run words together: ``lightbulb``)."""
    words = normalise_name(name).split(" ")
    out: set[str] = {f"{w[:i]} {w[i:]}" for w in words if w.isalpha() for i in range(3, len(w) - 2)}
    for i in range(len(words)):
        for j in range(i + 1, len(words) + 1):
            runs = [""]
            for w in words[i:j]:
                runs = [f"{r} {f}".strip() for r in runs for f in sorted(word_forms(w))]
            out.update(runs)
    out.discard("")
    return out


@dataclass(frozen=True)
class Reserved:
    """The reserved hashes and the checks against them."""

    names: frozenset[str]
    code_points: frozenset[str]
    synonyms: frozenset[str] = SYNONYM_SHA256

    @classmethod
    def load(cls, path: str | Path | None = None) -> Reserved:
        path = Path(path) if path is not None else DEFAULT_PATH
        try:
            raw = json.loads(path.read_text())
            return cls(frozenset(raw["name_sha256"]), frozenset(raw["codepoint_sha256"]))
        except (OSError, json.JSONDecodeError, KeyError) as exc:
            raise ConfigError(
                f"{path}: cannot read the reserved concepts ({exc}); expected the shared demo data "
                "(../shared/demo-data/reserved.json beside the repository), or pass its path"
            ) from exc

    def name_exact(self, name: str) -> bool:
        """The normalised name itself is listed."""
        return sha256(normalise_name(name)) in self.names

    def name_match(self, name: str) -> str | None:
        """The first variant of ``name`` that is reserved or a listed synonym, or None."""
        for variant in sorted(name_variants(name)):
            digest = sha256(variant)
            if digest in self.names or digest in self.synonyms:
                return variant
        return None

    def name_reason(self, name: str) -> str | None:
        """Why ``name`` is dropped: "reserved" (its normalised self is listed), "form" (a run of
        its words or a singular/plural form is listed), "synonym" (a listed near-synonym), or None."""
        if self.name_exact(name):
            return "reserved"
        hit = self.name_match(name)
        if hit is None:
            return None
        return "synonym" if sha256(hit) in self.synonyms and sha256(hit) not in self.names else "form"

    def code_point_match(self, code: str) -> str | None:
        """The listed sequence or single code point of ``code``, or None."""
        parts = normalise_code_points(code).split("-")
        # File names differ in zero padding ('A9' / '00A9') and in FE0F selectors: try each spelling.
        spellings = [[p.lstrip("0") or "0" for p in parts], [p.lstrip("0").zfill(4) for p in parts]]
        spellings += [[p for p in s if p != "FE0F"] for s in spellings]
        candidates = ["-".join(s) for s in spellings] + [p for s in spellings for p in s]
        for candidate in dict.fromkeys(candidates):
            if sha256(candidate) in self.code_points:
                return candidate
        return None

    def any_match(self, names: Iterable[str] = (), code_points: Iterable[str] = ()) -> bool:
        return any(self.name_match(n) for n in names) or any(self.code_point_match(c) for c in code_points)


@lru_cache(maxsize=4)
def load_reserved(path: str | None = None) -> Reserved:
    return Reserved.load(path)
