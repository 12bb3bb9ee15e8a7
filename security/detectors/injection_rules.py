"""Explainable prompt-injection and jailbreak rules, applied to normalised (lower-case) text.

Each rule is a regular expression with an id, a category and a confidence. They are written
for phrasings, not for the training rows: an instruction to drop earlier instructions in a
dozen languages, requests to reveal the system prompt, role-play "without restrictions"
set-ups, fake chat-template markers and instructions addressed to the assistant from inside a
document or tool output.
"""

# ruff: noqa: RUF001  (look-alike characters are what this file is about)

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    category: str  # "prompt_injection" | "jailbreak"
    score: float
    pattern: re.Pattern[str]
    reason: str
    indirect_only: bool = False  # only in retrieved context / tool output
    needles: tuple[str, ...] = ()  # the rule runs only on texts holding one of these (speed)


_IGNORE_VERB = r"(?:ignore|disregard|forget|skip|override|bypass|overlook|neglect|drop|abandon|discard|set aside|throw out|stop following|do not follow|don'?t follow)"
_PRIOR = r"(?:previous|prior|above|earlier|preceding|original|initial|old|former|system|existing|given|all|any|every|your|the|these|those|my|other)"
_INSTRUCTIONS = r"(?:instructions?|rules|prompts?|directives?|guidelines|guidance|commands?|orders|constraints|programming|restrictions|system message|context)"

_RULES: list[tuple[str, str, float, str, str, bool]] = [
    (
        "pi.ignore_instructions",
        "prompt_injection",
        0.95,
        rf"\b{_IGNORE_VERB}\s+(?:(?:all|any|of|everything)\s+)?(?:{_PRIOR}\s+){{1,3}}(?:\w+\s+)?{_INSTRUCTIONS}\b",
        "asks to drop earlier instructions",
        False,
    ),
    *(
        ("pi.ignore_instructions", "prompt_injection", 0.95, pattern, reason, False)
        for pattern, reason in (
            (
                r"\b(?:ignoriere|vergiss|missachte)\s+(?:\w+\s+){0,3}(?:anweisungen|anleitungen|instruktionen|regeln|befehle)",
                "asks to drop earlier instructions (German)",
            ),
            (
                r"\b(?:ignore[zr]?|oublie[zr]?)\s+(?:\w+\s+){0,3}(?:instructions|consignes|règles|directives)",
                "asks to drop earlier instructions (French)",
            ),
            (
                r"\b(?:ignora|ignore|olvida|olvide|omite|dimentica|esqueça|esqueca)\s+(?:\w+\s+){0,3}"
                r"(?:instrucciones|indicaciones|reglas|órdenes|istruzioni|regole|instruções|instrucoes|regras|orientações)",
                "asks to drop earlier instructions (Spanish, Italian, Portuguese)",
            ),
            (
                r"\b(?:negeer|vergeet|zignoruj|ignoruj|zapomnij)\s+(?:\w+\s+){0,3}(?:instructies|regels|aanwijzingen|instrukcje|polecenia|zasady)",
                "asks to drop earlier instructions (Dutch, Polish)",
            ),
            (
                r"(?:игнорируй|игнорируйте|забудь|забудьте|проигнорируй)\s+(?:\w+\s+){0,3}(?:инструкции|указания|правила|команды)",
                "asks to drop earlier instructions (Russian)",
            ),
            (
                r"(?:忽略|无视|忘记|忽视|不要理会)\s*(?:\w{0,12})?(?:指令|指示|说明|规则|提示)"
                r"|(?:以前|以上|前|これまで)の(?:すべての)?(?:指示|命令|ルール)を?(?:無視|忘れ)"
                r"|(?:이전|앞의|위의|모든)\s*(?:\w+\s+)?(?:지시|명령|지침|규칙)\w*\s*(?:을|를)?\s*무시",
                "asks to drop earlier instructions (Chinese, Japanese, Korean)",
            ),
            (
                r"(?:önceki|tüm)\s+(?:\w+\s+)?(?:talimatları|kuralları)\s+(?:yok say|görmezden gel|unut)"
                r"|تجاهل\s+(?:\w+\s+){0,3}(?:التعليمات|الأوامر|القواعد)"
                r"|(?:निर्देशों|नियमों)\s+(?:को\s+)?(?:अनदेखा|नज़रअंदाज़|भूल)",
                "asks to drop earlier instructions (Turkish, Arabic, Hindi)",
            ),
        )
    ),
    (
        "pi.system_prompt_leak",
        "prompt_injection",
        0.9,
        r"\b(?:reveal|show|print|repeat|output|display|tell me|leak|give me|what (?:is|are|was)|spell out|write out|dump|disclose|share)\s+"
        r"(?:\w+\s+){0,2}(?:system prompt|initial prompt|hidden (?:instructions|prompt)|original (?:instructions|prompt)|"
        r"(?:instructions|prompt|text) (?:above|you were given)|pre-?prompt|secret (?:password|key|instructions)|developer (?:message|instructions))",
        "asks for the system prompt or a secret",
        False,
    ),
    (
        "jb.dan",
        "jailbreak",
        0.95,
        r"\bdo anything now\b|\bdeveloper mode (?:enabled|output|on)\b|\b(?:enable|activate|enter) developer mode\b|\b(?:you are|you're|now|fully|be) jailbroken\b|\bjailbreak(?:ed)? mode\b|\bdan mode\b|\b(?:stan|dude|aim|dan) (?:stands for|which stands)",
        "known jailbreak persona or mode",
        False,
    ),
    (
        "jb.no_restrictions",
        "jailbreak",
        0.9,
        r"\b(?:you|it|he|she|they|ai|assistant|model|chatbot|character)\s+(?:\w+\s+){0,4}?"
        r"(?:(?:has|have|with)\s+no|(?:is|are)\s+(?:free|freed|released|liberated)\s+(?:from|of)|without|(?:is|are)\s+not\s+bound\s+by|"
        r"(?:does|do)\s*n[o']t\s+(?:have\s+to\s+)?(?:follow|abide\s+by|adhere\s+to|care\s+about)|(?:never|won'?t|will\s+not)\s+(?:refuse|decline)|broken?\s+free\s+(?:of|from))\s+"
        r"(?:\w+\s+){0,3}?(?:restrictions|limitations|limits|filters|filtering|censorship|rules|guidelines|ethics|ethical|morals|moral|morality|content polic(?:y|ies)|openai|policies|boundaries|principles|refus\w*)",
        "role set up to have no restrictions",
        False,
    ),
    (
        "jb.unfiltered_persona",
        "jailbreak",
        0.85,
        r"\b(?:pretend|act|behave|roleplay|role-play|respond|answer|reply|simulate|you are|you're|you will be|from now on)\b[^.\n]{0,60}\b"
        r"(?:unfiltered|uncensored|amoral|unrestricted|unethical|immoral|unbound|unhinged|no ethics|no morals|without (?:any )?(?:morals|ethics|filters|censorship))\b",
        "asks for an unfiltered persona",
        False,
    ),
    (
        "jb.dual_response",
        "jailbreak",
        0.85,
        r"\b(?:two|2)\s+(?:different\s+|separate\s+|distinct\s+)*(?:ways|responses|answers|paragraphs)\b[^\n]{0,200}\[[^\]\n]{2,20}\]",
        "asks for a second, unfiltered answer",
        False,
    ),
    (
        "pi.fake_template",
        "prompt_injection",
        0.9,
        r"<\|(?:im_start|im_end|system|endoftext|start_header_id|eot_id)\|>|\[/?inst\]|<</?sys>>|^\s*#{2,}\s*(?:system|new instructions?|instruction)\s*:?\s*$"
        r"|^\s*\[?(?:system|admin|developer)\]?\s*(?:message|override|note)?\s*:\s*(?:ignore|you must|new|from now)",
        "fake chat-template or system marker",
        False,
    ),
    (
        "pi.new_instructions",
        "prompt_injection",
        0.85,
        r"\b(?:new|updated|real|actual|revised|secret|hidden)\s+(?:instructions?|task|system prompt|directive|orders)\s*(?::|are|is|follow)"
        r"|\binstead,? (?:you (?:must|should|will)|do the following|your (?:new )?task is)\b"
        r"|\byour (?:new|real|actual|true) (?:task|goal|purpose|instructions?|objective) (?:is|are)\b",
        "announces replacement instructions",
        False,
    ),
    (
        "pi.addressed_to_ai",
        "prompt_injection",
        0.9,
        r"\b(?:ai|assistant|chatbot|language model|llm|gpt|chatgpt|claude|copilot|bot|agent)\s*[,:]\s*(?:please\s+)?(?:ignore|you must|you should|do not|don'?t|instead|stop|forget|now|make sure|always|never|send|forward|include|append|insert|reply|respond|output|tell|say)\b"
        r"|\b(?:when|if|once|while)\s+(?:you|the (?:ai|assistant|model|llm|agent|bot))\s+(?:are\s+)?(?:read|reads|reading|summari[sz]e|summari[sz]es|summari[sz]ing|process|processes|processing|see|sees|analy[sz]e|analy[sz]es|parse|parses)\s+(?:this|these)\b"
        r"|\b(?:note|message|instructions?) (?:to|for) (?:the )?(?:ai|assistant|model|llm|agent|bot|language model)\b"
        r"|\b(?:do not|don'?t|never) (?:tell|inform|mention (?:this|it) to|reveal (?:this|it) to|alert|warn) (?:the )?user\b",
        "instruction addressed to the assistant",
        False,
    ),
    (
        "pi.exfiltration_instruction",
        "prompt_injection",
        0.9,
        r"\b(?:send|forward|e-?mail|post|upload|exfiltrate|transmit|leak|copy)\s+(?:\w+\s+){0,3}?(?:conversation|chat history|chat log|messages|credentials|passwords?|api keys?|tokens?|secrets|personal data|user data|contacts|files)\s+(?:\w+\s+){0,2}?to\s+(?:https?://|\S+@\S+|(?:this|the following|my) (?:url|address|server|endpoint|email))",
        "asks to send data to an outside address",
        False,
    ),
    (
        "pi.secret_request",
        "prompt_injection",
        0.85,
        r"\b(?:what(?:'s| is| was)|give me|tell me|share|reveal|send me|spell|say)\s+(?:\w+\s+){0,2}?(?:your|the|ur)\s+"
        r"(?:secret\s+)?(?:password|passcode|passphrase|secret key|secret code|confidential string|access code)\s*(?:[?.!]|$)"
        r"|(?:你的|的)?密码是什么|密码[?？]|암호[?？]|パスワードは何|(?:твой|ваш)\s+пароль",
        "asks for a password or secret",
        False,
    ),
    (
        "pi.false_authority",
        "prompt_injection",
        0.85,
        r"\b(?:i am|i'm)\s+(?:god|your (?:creator|developer|admin|administrator|owner|master)|the (?:president|administrator|system administrator|developer|ceo)\b)"
        r"[^.\n]{0,80}?\b(?:you (?:must|have to|need to|are required to)|share|reveal|tell me|give me)"
        r"|我是(?:上帝|神|你的(?:主人|开发者|创造者|管理员))",
        "claims authority to get obedience",
        False,
    ),
    (
        "pi.indirect_imperative",
        "prompt_injection",
        0.8,
        r"^\s*(?:important|urgent|attention|notice|note)\s*[:!]+\s*(?:\w+\s+){0,4}?(?:you|assistant|ai|model)\s+(?:must|should|need to|have to|are required to)\b",
        "urgent instruction inside data",
        True,
    ),
]

# Literals one of which every match of a rule contains: a substring test is much cheaper than
# a regular-expression pass, so a rule is skipped on texts without any of them.
_NEEDLES: dict[str, tuple[str, ...]] = {
    "asks to drop earlier instructions": (
        "ignor", "disregard", "forget", "skip", "overrid", "bypass", "overlook", "neglect", "drop", "abandon",
        "discard", "set aside", "throw out", "follow",
    ),
    "asks to drop earlier instructions (German)": ("ignoriere", "vergiss", "missacht"),
    "asks to drop earlier instructions (French)": ("ignore", "oubli"),
    "asks to drop earlier instructions (Spanish, Italian, Portuguese)": (
        "ignor", "olvid", "omite", "dimentic", "esqueç", "esquec",
    ),
    "asks to drop earlier instructions (Dutch, Polish)": ("negeer", "vergeet", "ignoruj", "zapomnij"),
    "asks to drop earlier instructions (Russian)": ("игнор", "забуд", "проигнор"),
    "asks to drop earlier instructions (Chinese, Japanese, Korean)": (
        "忽略", "无视", "忘记", "忽视", "不要理会", "無視", "忘れ", "무시",
    ),
    "asks to drop earlier instructions (Turkish, Arabic, Hindi)": (
        "yok say", "görmezden", "unut", "تجاهل", "अनदेखा", "नज़रअंदाज़", "भूल",
    ),
    "known jailbreak persona or mode": ("do anything now", "developer mode", "jailbr", "dan mode", "stands for"),
    "role set up to have no restrictions": (
        "restrict", "limit", "filter", "censor", "rule", "guideline", "ethic", "moral", "polic", "openai", "boundar",
        "principle", "refus",
    ),
    "asks for an unfiltered persona": (
        "unfilter", "uncensor", "amoral", "unrestrict", "unethical", "immoral", "unbound", "unhinged", "no ethics",
        "no morals", "without",
    ),
    "asks for a second, unfiltered answer": ("[",),
    "announces replacement instructions": ("instruction", "task", "system prompt", "directive", "orders", "instead", "your "),
    "asks for a password or secret": (
        "password", "passcode", "passphrase", "secret", "confidential", "access code", "密码", "암호", "パスワード", "пароль",
    ),
    "claims authority to get obedience": ("i am ", "i'm ", "我是"),
    "asks to send data to an outside address": (
        "send", "forward", "mail", "post", "upload", "exfiltrat", "transmit", "leak", "copy",
    ),
}  # fmt: skip

RULES: tuple[Rule, ...] = tuple(
    Rule(rule_id, category, score, re.compile(pattern, re.MULTILINE), reason, indirect_only, _NEEDLES.get(reason, ()))
    for rule_id, category, score, pattern, reason, indirect_only in _RULES
)


def match_rules(text: str, *, indirect: bool) -> list[tuple[Rule, re.Match[str]]]:
    """Every rule match in a normalised text (indirect-only rules when ``indirect``)."""
    hits = []
    for rule in RULES:
        if (rule.indirect_only and not indirect) or (rule.needles and not any(n in text for n in rule.needles)):
            continue
        for match in rule.pattern.finditer(text):
            hits.append((rule, match))
    return hits
