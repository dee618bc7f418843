"""What a voice agent says: the diagnosis's driver lines in several languages, with the
site's spoken names for chargers and connectors.

Every line a diagnosis gives the driver (``say``: a finding, a pending check, the
healthy or resolved verdict) is a :class:`libv4e.scenarios.Line`: a key
(:class:`libv4e.scenarios.Say`) and the connector it is about; the line to say while
taking a suggested action is keyed by the tool (:func:`action_line`). Each is rendered
in the language asked for (``lang``: :data:`LANGUAGES`), with
:class:`~libv4e.csms.SpokenNames` filling ``{where}`` (the subject: "the charger",
"this plug" or the site's alias, "bay 3, left plug") and ``{at}`` (the place, "at bay 3,
left plug"; left out without an alias: "The cable is unlocked").

Spoken budget: every line is at most :data:`MAX_SAY_WORDS` words in every language, an
alias counting as one word (a name is said as one unit). Lines carry no ids and no
protocol words; ``tests/scenarios/test_voice.py`` checks both for every key and language.
"""

from __future__ import annotations

import dataclasses
import re

from libv4e.csms import SpokenNames
from libv4e.scenarios import Line

__all__ = [
    "LANGUAGES",
    "MAX_SAY_WORDS",
    "PHRASES",
    "Voice",
    "action_line",
    "pick_language",
]

LANGUAGES = ("en", "de", "fr", "es")
"""The languages of the fixed lines (English first: the fallback)."""

MAX_SAY_WORDS = 15


_DEFAULT_WHERE = {
    # language: the subject for the charger and for a connector (no alias); the place
    # ("{at}") without an alias is left out: "The cable is unlocked."
    "en": ("the charger", "this plug"),
    "de": ("die Ladesäule", "dieser Ladepunkt"),
    "fr": ("la borne", "cette prise"),
    "es": ("el cargador", "este conector"),
}
_AT_ALIAS = {"en": "at {}", "de": "an {}", "fr": "à {}", "es": "en {}"}


def _p(en: str, de: str, fr: str, es: str) -> dict[str, str]:
    return {"en": en, "de": de, "fr": fr, "es": es}


PHRASES: dict[str, dict[str, str]] = {
    # keys: every libv4e.scenarios.Say, and "action.<tool>" for the action lines
    # -- findings -------------------------------------------------------------------------
    "offline.disconnected": _p(
        "{where} isn't connected to our network, so I can't reach it right now.",
        "{where} ist nicht mit unserem Netz verbunden, ich erreiche sie gerade nicht.",
        "{where} n'est pas connectée à notre réseau, je ne peux pas la joindre.",
        "{where} no está conectado a nuestra red, ahora no puedo acceder a él.",
    ),
    "offline.silent": _p(
        "{where} has stopped talking to our network. I'll restart it; that takes a minute.",
        "{where} meldet sich nicht mehr. Ich starte sie neu, das dauert eine Minute.",
        "{where} ne répond plus à notre réseau. Je la redémarre, cela prend une minute.",
        "{where} ha dejado de responder. Lo reinicio; tarda un minuto.",
    ),
    "stuck_connector": _p(
        "The cable lock {at} didn't release. I can unlock it remotely for you.",
        "Die Kabelverriegelung {at} hat sich nicht gelöst. Ich kann sie aus der Ferne öffnen.",
        "Le câble {at} est resté verrouillé. Je peux le débloquer à distance.",
        "El bloqueo del cable {at} no se soltó. Puedo desbloquearlo a distancia.",
    ),
    "connector_unavailable": _p(
        "{where} was switched off remotely. I can switch it back on for you.",
        "{where} wurde aus der Ferne abgeschaltet. Ich kann das rückgängig machen.",
        "{where} a été désactivée à distance. Je peux la réactiver pour vous.",
        "{where} se apagó a distancia. Puedo volver a encenderlo.",
    ),
    "reserved": _p(
        "{where} is reserved for another driver right now. Please use another plug.",
        "{where} ist gerade für jemand anderen reserviert. Bitte nehmen Sie einen anderen.",
        "{where} est réservée pour quelqu'un d'autre. Utilisez une autre prise, s'il vous plaît.",
        "{where} está reservado para otra persona. Por favor, use otro conector.",
    ),
    "fault.HighTemperature": _p(
        "{where} has overheated and paused. It needs to cool down before it restarts.",
        "{where} ist überhitzt und pausiert. Vor einem Neustart muss alles abkühlen.",
        "{where} a surchauffé et s'est mise en pause. Elle doit refroidir d'abord.",
        "{where} se ha sobrecalentado y está en pausa. Debe enfriarse antes de seguir.",
    ),
    "fault.OverCurrentFailure": _p(
        "{where} stopped because it drew too much current. A restart usually clears this.",
        "{where} hat wegen zu hohem Strom abgeschaltet. Ein Neustart behebt das meist.",
        "{where} s'est arrêtée à cause d'un courant trop fort. Un redémarrage suffit souvent.",
        "{where} se detuvo por exceso de corriente. Un reinicio suele solucionarlo.",
    ),
    "fault.voltage": _p(
        "{where} stopped because of a grid voltage problem. A restart may clear this.",
        "{where} hat wegen eines Spannungsproblems abgeschaltet. Ein Neustart kann helfen.",
        "{where} s'est arrêtée à cause de la tension du réseau. Un redémarrage peut aider.",
        "{where} se detuvo por un problema de tensión. Un reinicio puede solucionarlo.",
    ),
    "fault.GroundFailure": _p(
        "{where} detected an electrical safety problem. A technician needs to check it.",
        "{where} hat ein elektrisches Sicherheitsproblem erkannt. Ein Techniker muss das prüfen.",
        "{where} a détecté un problème de sécurité électrique. Un technicien doit vérifier.",
        "{where} detectó un problema de seguridad eléctrica. Debe revisarlo un técnico.",
    ),
    "fault.PowerMeterFailure": _p(
        "The meter {at} has a problem, so it can't charge right now.",
        "Der Zähler {at} hat ein Problem, deshalb kann gerade nicht geladen werden.",
        "Le compteur {at} a un problème, la recharge est impossible pour l'instant.",
        "El contador {at} tiene un problema, ahora no se puede cargar.",
    ),
    "fault.EVCommunicationError": _p(
        "{where} can't talk to your car. Please unplug, plug in again, and retry.",
        "{where} erreicht Ihr Auto nicht. Bitte ausstecken, wieder einstecken und neu versuchen.",
        "{where} ne communique pas avec la voiture. Débranchez, rebranchez et réessayez.",
        "{where} no se comunica con su coche. Desenchúfelo, vuelva a enchufarlo y reintente.",
    ),
    "fault.ReaderFailure": _p(
        "The card reader isn't working. I can start the charge for you remotely.",
        "Das Kartenlesegerät funktioniert nicht. Ich kann das Laden aus der Ferne starten.",
        "Le lecteur de carte ne marche pas. Je peux lancer la recharge à distance.",
        "El lector de tarjetas no funciona. Puedo iniciar la carga a distancia.",
    ),
    "fault.generic": _p(
        "{where} reports a fault and can't charge right now. A restart may clear it.",
        "{where} meldet eine Störung und kann gerade nicht laden. Ein Neustart kann helfen.",
        "{where} signale un défaut et ne peut pas charger. Un redémarrage peut aider.",
        "{where} indica una avería y no puede cargar. Un reinicio puede solucionarlo.",
    ),
    "session_start_failure": _p(
        "{where} accepted the start, but charging never began. A restart usually fixes it.",
        "{where} hat den Start angenommen, aber nie geladen. Ein Neustart hilft meistens.",
        "{where} a accepté le départ, mais la charge n'a pas commencé. Un redémarrage aide.",
        "{where} aceptó el inicio, pero la carga no empezó. Un reinicio suele arreglarlo.",
    ),
    "slow_charging": _p(
        "Charging is much slower than usual, probably because power is shared. A restart helps.",
        "Es lädt viel langsamer als üblich, wohl wegen geteilter Leistung. Ein Neustart hilft.",
        "La recharge est très lente, sans doute car la puissance est partagée. Redémarrer aide.",
        "La carga va mucho más lenta, seguramente por potencia compartida. Un reinicio ayuda.",
    ),
    "auth.blocked": _p(
        "Your card isn't active in our system, so the charger refuses it.",
        "Ihre Karte ist bei uns nicht aktiv, deshalb lehnt die Ladesäule sie ab.",
        "Votre carte n'est pas active chez nous, la borne la refuse donc.",
        "Su tarjeta no está activa en nuestro sistema, por eso el cargador la rechaza.",
    ),
    "auth.stale_list": _p(
        "The charger's card list is outdated, so it refuses your card. I can fix it.",
        "Die Ladesäule hat eine veraltete Kartenliste und lehnt Ihre Karte ab. Das behebe ich.",
        "La borne a une liste de cartes périmée et refuse votre carte. Je corrige ça.",
        "El cargador tiene una lista de tarjetas antigua y rechaza la suya. Puedo arreglarlo.",
    ),
    # -- pending: verification moments ------------------------------------------------------
    "pending.restarted": _p(
        "The charger has restarted. I'm checking it reports normally again.",
        "Die Ladesäule ist neu gestartet. Ich prüfe, ob sie wieder normal meldet.",
        "La borne a redémarré. Je vérifie qu'elle répond normalement.",
        "El cargador se ha reiniciado. Compruebo que vuelve a responder con normalidad.",
    ),
    "pending.quiet_moment": _p(
        "The charger has gone quiet for a moment. Give me a few seconds.",
        "Die Ladesäule ist kurz still. Geben Sie mir ein paar Sekunden.",
        "La borne ne répond plus depuis un instant. Laissez-moi quelques secondes.",
        "El cargador lleva un momento sin responder. Deme unos segundos.",
    ),
    "pending.quiet_probe": _p(
        "The charger has been quiet. Let me check it is still responding.",
        "Die Ladesäule war still. Ich prüfe, ob sie noch antwortet.",
        "La borne est restée silencieuse. Je vérifie qu'elle répond encore.",
        "El cargador ha estado en silencio. Compruebo que sigue respondiendo.",
    ),
    "pending.energy": _p(
        "Charging has started. I'm checking that energy is flowing.",
        "Das Laden hat begonnen. Ich prüfe, ob Energie fließt.",
        "La recharge a commencé. Je vérifie que l'énergie passe.",
        "La carga ha empezado. Compruebo que la energía fluye.",
    ),
    "pending.start_wait": _p(
        "I've asked the charger to start. I'll check again in a few seconds.",
        "Ich habe den Start angefordert. In ein paar Sekunden prüfe ich erneut.",
        "J'ai demandé le démarrage. Je revérifie dans quelques secondes.",
        "He pedido que empiece a cargar. Lo compruebo en unos segundos.",
    ),
    "pending.first_reading": _p(
        "Charging has started. I'm waiting for the first power reading.",
        "Das Laden hat begonnen. Ich warte auf den ersten Messwert.",
        "La recharge a commencé. J'attends la première mesure de puissance.",
        "La carga ha empezado. Espero la primera lectura de potencia.",
    ),
    "pending.below_full": _p(
        "Charging is a little below full speed. I'll check again in a moment.",
        "Es lädt etwas unter voller Leistung. Ich prüfe gleich noch einmal.",
        "La recharge est un peu sous sa pleine vitesse. Je revérifie dans un instant.",
        "La carga va algo por debajo de la máxima. Lo compruebo enseguida.",
    ),
    "pending.escalate": _p(
        "Starting hasn't worked twice, so I'm passing this to our technicians.",
        "Der Start hat zweimal nicht geklappt. Ich gebe das an unsere Techniker weiter.",
        "Le démarrage a échoué deux fois. Je transmets à nos techniciens.",
        "El inicio ha fallado dos veces. Lo paso a nuestros técnicos.",
    ),
    "pending.try_start": _p(
        "I can't see a problem yet. Let's try starting a charge {at}.",
        "Ich sehe noch kein Problem. Versuchen wir, {at} einen Ladevorgang zu starten.",
        "Je ne vois pas encore de problème. Essayons de lancer une recharge {at}.",
        "Aún no veo ningún problema. Probemos a iniciar una carga {at}.",
    ),
    # -- healthy and resolution moments -------------------------------------------------------
    "healthy": _p(
        "The charger looks fine: it's online, reporting normally, and charging works.",
        "Die Ladesäule ist in Ordnung: online, meldet normal, und das Laden funktioniert.",
        "La borne va bien : elle est en ligne, répond normalement et la recharge fonctionne.",
        "El cargador está bien: en línea, responde con normalidad y la carga funciona.",
    ),
    "resolved.unlocked": _p(
        "The cable {at} is unlocked. You can unplug now.",
        "Das Kabel {at} ist entriegelt. Sie können jetzt ausstecken.",
        "Le câble {at} est déverrouillé. Vous pouvez débrancher.",
        "El cable {at} está desbloqueado. Ya puede desenchufarlo.",
    ),
    "resolved.leave": _p(
        "{where} is free. You can unplug and go.",
        "{where} ist frei. Sie können ausstecken und losfahren.",
        "{where} est libre. Vous pouvez débrancher et partir.",
        "{where} está libre. Puede desenchufar y marcharse.",
    ),
    "resolved.charging": _p(
        "Your car is charging {at} now, and energy is flowing.",
        "Ihr Auto lädt jetzt {at}, die Energie fließt.",
        "Votre voiture charge maintenant {at}, l'énergie passe.",
        "Su coche ya está cargando {at} y la energía fluye.",
    ),
    "resolved.card": _p(
        "Your card works now, and your car is charging.",
        "Ihre Karte funktioniert jetzt, und Ihr Auto lädt.",
        "Votre carte fonctionne maintenant et votre voiture charge.",
        "Su tarjeta ya funciona y su coche está cargando.",
    ),
    "resolved.back_online": _p(
        "The charger is back online and your car is charging.",
        "Die Ladesäule ist wieder online, und Ihr Auto lädt.",
        "La borne est de nouveau en ligne et votre voiture charge.",
        "El cargador vuelve a estar en línea y su coche está cargando.",
    ),
    "resolved.full_speed": _p(
        "You're back at full charging speed.",
        "Sie laden wieder mit voller Leistung.",
        "Vous rechargez de nouveau à pleine puissance.",
        "Vuelve a cargar a máxima potencia.",
    ),
    # -- what to say while taking an action -------------------------------------------------
    "action.reset_charger": _p(
        "I'm restarting the charger now. It takes about a minute.",
        "Ich starte die Ladesäule jetzt neu. Das dauert etwa eine Minute.",
        "Je redémarre la borne maintenant. Cela prend environ une minute.",
        "Reinicio el cargador ahora. Tarda más o menos un minuto.",
    ),
    "action.unlock_connector": _p(
        "I'm releasing the cable lock {at} now.",
        "Ich entriegle jetzt das Kabel {at}.",
        "Je déverrouille le câble {at} maintenant.",
        "Desbloqueo ahora el cable {at}.",
    ),
    "action.remote_start": _p(
        "I'm starting your charge {at} now.",
        "Ich starte jetzt Ihren Ladevorgang {at}.",
        "Je lance votre recharge {at} maintenant.",
        "Inicio ahora su carga {at}.",
    ),
    "action.remote_stop": _p(
        "I'm stopping the session {at} now.",
        "Ich beende jetzt den Ladevorgang {at}.",
        "J'arrête la session {at} maintenant.",
        "Detengo ahora la sesión {at}.",
    ),
    "action.send_local_list": _p(
        "I'm updating your card on the charger.",
        "Ich aktualisiere Ihre Karte an der Ladesäule.",
        "Je mets à jour votre carte sur la borne.",
        "Actualizo su tarjeta en el cargador.",
    ),
    "action.change_availability.Inoperative": _p(
        "I'm restarting {where}. It takes a few seconds.",
        "Ich starte {where} neu. Das dauert ein paar Sekunden.",
        "Je redémarre {where}. Cela prend quelques secondes.",
        "Reinicio {where}. Tarda unos segundos.",
    ),
    "action.change_availability.Operative": _p(
        "I'm switching {where} back on.",
        "Ich schalte {where} wieder ein.",
        "Je réactive {where}.",
        "Vuelvo a encender {where}.",
    ),
    "action.create_ticket": _p(
        "I've passed this to our technicians. They'll follow up soon.",
        "Ich habe das an unsere Techniker weitergegeben. Sie melden sich bald.",
        "J'ai transmis à nos techniciens. Ils vous recontacteront bientôt.",
        "Se lo he pasado a nuestros técnicos. Le contactarán pronto.",
    ),
    "action.check": _p(
        "One moment, I'm checking the charger.",
        "Einen Moment, ich prüfe die Ladesäule.",
        "Un instant, je vérifie la borne.",
        "Un momento, compruebo el cargador.",
    ),
}

_SPACES = re.compile(r" {2,}")
_SPACE_BEFORE_PUNCT = re.compile(r" ([.,;!?])")

_GERMAN_OBJECT = {"dieser Ladepunkt": "diesen Ladepunkt"}
"""The subject as an object, where a language's grammar needs it."""


def pick_language(requested: str | None, accept_language: str | None = None) -> str:
    """``requested`` when supported, else the best supported entry of an
    ``Accept-Language`` header (``de-CH, fr;q=0.8``), else English."""
    if requested in LANGUAGES:
        return requested
    if accept_language:
        ranked: list[tuple[float, int, str]] = []
        for i, part in enumerate(accept_language.split(",")[:32]):
            tag, _, params = part.strip().partition(";")
            quality = 1.0
            match = re.fullmatch(r"\s*q=([01](?:\.\d{0,3})?)\s*", params) if params else None
            if params and match is None:
                continue
            if match is not None:
                quality = float(match.group(1))
            primary = tag.strip().split("-")[0].lower()
            if primary in LANGUAGES and quality > 0:
                ranked.append((-quality, i, primary))
        if ranked:
            return min(ranked)[2]
    return "en"


@dataclasses.dataclass(frozen=True)
class Voice:
    """Renders :class:`Line` objects in one language with one charger's spoken names."""

    lang: str = "en"
    names: SpokenNames | None = None

    def where(self, connector_id: int | None) -> tuple[str, str]:
        """The spoken subject and place for a connector (None: the charger)."""
        lang = self.lang if self.lang in LANGUAGES else "en"
        alias = self.names.spoken(connector_id) if self.names is not None else None
        if alias:
            return alias, _AT_ALIAS[lang].format(alias)
        return _DEFAULT_WHERE[lang][1 if connector_id else 0], ""

    def say(self, line: Line) -> str:
        """``line`` in this voice's language (English when a key lacks it)."""
        texts = PHRASES[line.key]
        text = texts.get(self.lang) or texts["en"]
        subject, place = self.where(line.connector_id)
        if self.lang == "de" and not text.startswith("{where}"):
            subject = _GERMAN_OBJECT.get(subject, subject)
        out = text.replace("{where}", subject).replace("{at}", place)
        out = _SPACE_BEFORE_PUNCT.sub(r"\1", _SPACES.sub(" ", out))
        return out[:1].upper() + out[1:]


def action_line(tool: str, arguments: dict[str, object]) -> Line:
    """What to say while taking the action ``tool(arguments)``."""
    cid = arguments.get("connector_id")
    connector = cid if isinstance(cid, int) and cid > 0 else None
    if tool == "change_availability":
        kind = "Operative" if arguments.get("type") == "Operative" else "Inoperative"
        return Line(f"action.change_availability.{kind}", connector)
    key = f"action.{tool}"
    return Line(key if key in PHRASES else "action.check", connector)
